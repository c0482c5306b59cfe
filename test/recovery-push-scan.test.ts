/**
 * archive-push reads every record: a segment whose record fails its CRC is refused (exit 3)
 * with nothing stored; a sound one is stored with its transactions and restore points, and a
 * record spanning two segments pushed in reverse order is indexed once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { walship } from './helpers/walship.js';
import { unixMsToPgTime } from '../src/wal/records.js';
import { WalWriter } from './wal-synth.js';

const MB = 1024 * 1024;
const T0 = unixMsToPgTime(Date.UTC(2026, 10, 24, 11, 8, 25));

describe('archive-push reads the records it archives', () => {
  let dir: string;
  let n = 0;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'walship-pushscan-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function fresh() {
    const base = join(dir, String(n++));
    mkdirSync(join(base, 'repo'), { recursive: true });
    return { repo: join(base, 'repo'), catalog: join(base, 'c.db'), files: base };
  }
  const push = (s: { repo: string; catalog: string }, path: string) => walship(['archive-push', path, '--repo', s.repo, '--catalog', s.catalog]);
  const write = (where: string, name: string, buf: Buffer) => {
    const p = join(where, name);
    writeFileSync(p, buf);
    return p;
  };

  it('refuses a segment whose record fails its CRC and stores nothing', async () => {
    const s = fresh();
    const w = new WalWriter(MB, 5 * MB);
    w.commit(10, T0);
    const c = w.commit(11, T0 + 1);
    w.switchWal();
    const [seg] = w.segments();
    const bad = Buffer.from(seg!.buf);
    bad[c.lsn - 5 * MB + 28] ^= 0x01;
    const r = await push(s, write(s.files, seg!.name, bad));
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`${seg!.name} is damaged: .*refusing to archive it.*code=INVALID_WAL`));
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const walDir = join(s.repo, 'wal');
    expect(existsSync(walDir) ? readdirSync(walDir, { recursive: true }).filter((f) => String(f).endsWith('.zst')) : []).toEqual([]);
    if (existsSync(s.catalog)) {
      const db = new Database(s.catalog, { readonly: true });
      expect((db.prepare('SELECT count(*) AS n FROM wal_files').get() as { n: number }).n).toBe(0);
      db.close();
    }
  });

  it('indexes transactions and restore points, and a spanning commit once in reverse push order', async () => {
    const s = fresh();
    const w = new WalWriter(MB, 5 * MB);
    w.commit(10, T0);
    w.restorePoint('rp', T0 + 2);
    w.fillTo(6 * MB - 16);
    w.commit(11, T0 + 3, Buffer.alloc(300));
    w.commit(12, T0 + 4);
    w.switchWal();
    const [a, b] = w.segments();
    for (const seg of [b!, a!, b!]) {
      const r = await push(s, write(s.files, seg.name, seg.buf));
      expect(r.code, r.stderr).toBe(0);
    }
    const db = new Database(s.catalog, { readonly: true });
    const rows = db.prepare('SELECT s.file, x.xid FROM wal_xacts x JOIN wal_scans s ON s.id = x.scan_id ORDER BY x.lsn').all();
    expect(rows).toEqual([
      { file: a!.name, xid: 10 },
      { file: a!.name, xid: 11 },
      { file: b!.name, xid: 12 },
    ]);
    expect(db.prepare('SELECT name FROM wal_restore_points').all()).toEqual([{ name: 'rp' }]);
    db.close();
  });
});
