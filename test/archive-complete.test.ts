/**
 * A segment cut short is never archived, and everything PostgreSQL itself hands to
 * archive_command still is. Real clusters archive through walship (1 MiB segments): segments
 * filled by writes, segments closed by pg_switch_wal(), and what a promoted streaming standby
 * produces (the old timeline's .partial, the history file, the new timeline's first segment,
 * which begins with a copy of the old timeline's WAL). A real segment with its second half zeroed — which recovery
 * would take for the end of the WAL, promoting early without an error — is refused (exit 3,
 * naming where valid WAL ends), at 1 MiB and at the default 16 MiB, and the genuine segment is
 * archived afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { chownSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PgCluster, confString, pgUser, removeTempDir, userTempDir, writeUserFile } from './helpers/pg.js';
import { caughtUp, startArchiving, startStandby, type Archiving } from './helpers/archiving.js';
import { fsBackend } from './helpers/backends.js';
import { walship } from './helpers/walship.js';
import { decodeObject } from '../src/archive/envelope.js';
import { formatLsn, parseWalFileName, segNoFromLogSeg } from '../src/wal/names.js';

const backend = fsBackend();
let a: Archiving;

beforeAll(async () => {
  a = await startArchiving(backend, 'complete', {}, { walSegSizeMb: 1 });
});
afterAll(async () => {
  await a?.cleanup();
});

const archivedBytes = async (name: string): Promise<Buffer> => (await decodeObject((await backend.driver().get(`wal/${name.slice(0, 16)}/${name}.zst`))!)).raw;
const scans = (catalog: string): { file: string; end_reason: string; end_lsn: number; start_lsn: number }[] => {
  const db = new Database(catalog, { readonly: true });
  try {
    return db.prepare('SELECT file, end_reason, end_lsn, start_lsn FROM wal_scans ORDER BY file').all() as never;
  } finally {
    db.close();
  }
};
const failures = async (c: PgCluster) => Number(await c.value('SELECT failed_count FROM pg_stat_archiver'));

/** Pushes `bytes` as `name` (staged in its own directory) into a repository of its own; returns the result. */
async function pushAlone(tag: string, name: string, bytes: Buffer, repo?: string): Promise<{ code: number; stderr: string }> {
  const dir = join(a.work, `stage-${tag}`);
  mkdirSync(dir, { recursive: true });
  chownSync(dir, pgUser().uid, pgUser().gid);
  writeUserFile(join(dir, name), bytes);
  const own = repo ?? join(a.work, `repo-${tag}`);
  if (!repo) {
    mkdirSync(own, { recursive: true });
    chownSync(own, pgUser().uid, pgUser().gid);
  }
  return walship(['archive-push', join(dir, name), '--repo', own, '--catalog', join(a.work, `catalog-${tag}.db`)], { asUser: true });
}

/** A copy of `seg` with everything from byte `from` on zeroed, as a torn or zeroed copy would be. */
function zeroedFrom(seg: Buffer, from: number): Buffer {
  const out = Buffer.from(seg);
  out.fill(0, from);
  return out;
}

describe('what PostgreSQL archives is accepted, a segment cut short is not', () => {
  let full: string;

  it('archives segments filled by writes and segments closed by pg_switch_wal(), refusing none', async () => {
    const p = a.primary;
    await p.sql('CREATE TABLE t (id int, v text)');
    await p.sql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 40000) g");
    await p.waitArchived(await p.switchWal());
    expect(await failures(p)).toBe(0);
    const rows = scans(a.catalog);
    const filled = rows.filter((r) => r.end_reason === 'segment-end');
    expect(filled.length).toBeGreaterThanOrEqual(2);
    expect(rows.some((r) => r.end_reason === 'switch')).toBe(true);
    // Every archived segment holds WAL to its end or ends with a switch.
    expect(rows.filter((r) => !/\.partial$/.test(r.file)).every((r) => r.end_reason === 'segment-end' || r.end_reason === 'switch')).toBe(true);
    full = filled[filled.length - 1]!.file;
  });

  it('refuses a real 1 MiB segment whose second half is zeroed (exit 3, naming where valid WAL ends), then archives the genuine one', async () => {
    const genuine = await archivedBytes(full);
    const cut = zeroedFrom(genuine, genuine.length / 2);
    const refused = await pushAlone('half', full, cut);
    expect(refused.code, refused.stderr).toBe(3);
    expect(refused.stderr).toMatch(new RegExp(`${full} is incomplete: valid WAL ends at offset (\\d+) of 1048576 .*XLOG_SWITCH.*code=INVALID_WAL`));
    const offset = Number(/ends at offset (\d+)/.exec(refused.stderr)![1]);
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThanOrEqual(genuine.length / 2);
    expect(readdirSync(join(a.work, 'repo-half')).filter((f) => f !== 'identity.json')).toEqual([]);
    // Nothing was stored, so the genuine segment is archived, not refused as different content.
    const ok = await pushAlone('half', full, genuine, join(a.work, 'repo-half'));
    expect(ok.code, ok.stderr).toBe(0);
    // Into the repository that holds the genuine segment, the cut copy is refused as invalid (not a conflict).
    const again = await pushAlone('half-again', full, cut, a.repo);
    expect(again.code, again.stderr).toBe(3);
  });

  it('archives what a promoted standby hands over: the history file, the old timeline\'s .partial and the new timeline\'s first segment', async () => {
    const p = a.primary;
    const b = await a.run(['backup', '--json'], a.pgEnv());
    expect(b.code, b.stderr).toBe(0);
    // A standby restored from that backup, streaming from the primary, archiving once promoted.
    const c = await startStandby(a, join(a.work, 'standby.db'));
    try {
      await p.sql("INSERT INTO t SELECT g, 'streamed' FROM generate_series(1, 3000) g");
      await caughtUp(c, await p.value('SELECT pg_current_wal_lsn()'));
      // Promoted in the middle of a segment it received by streaming.
      await c.value('SELECT pg_promote()');
      await c.waitPromoted();
      await c.sql("INSERT INTO t SELECT g, 'on timeline 2' FROM generate_series(1, 2000) g");
      const first2 = await c.switchWal();
      expect(first2.slice(0, 8)).toBe('00000002');
      await c.waitArchived(first2);
      expect(await failures(c)).toBe(0);
      const names = (await backend.listWalNames()).sort();
      expect(names).toContain('00000002.history');
      const partial = names.find((n) => n.endsWith('.partial'));
      expect(partial, names.join(' ')).toMatch(/^00000001[0-9A-F]{16}\.partial$/);
      // Timeline 2 starts in the segment timeline 1 was cut in: its first file begins with a copy of that.
      const tl2 = names.filter((n) => /^00000002[0-9A-F]{16}$/.test(n)).sort();
      expect(tl2[0]!.slice(8)).toBe(partial!.slice(8, 24));
      const own = scans(join(a.work, 'standby.db'));
      expect(own.find((s) => s.file === first2)!.end_reason).toBe('switch');
      expect(own.find((s) => s.file === partial)).toBeDefined();
    } finally {
      await c.destroy();
    }
  });
});

describe('a 16 MiB segment cut short', () => {
  let dir: string;
  let seg: Buffer;
  let name: string;

  beforeAll(async () => {
    // A cluster of the default segment size whose archive_command copies files out: a segment
    // filled by writes to its end.
    dir = userTempDir('complete16');
    const out = join(dir, 'wal');
    const c = await PgCluster.create({ baseDir: dir, conf: { archive_mode: 'on', archive_command: confString(`mkdir -p ${out} && cp %p ${out}/%f`) } });
    try {
      await c.start();
      await c.sql('CREATE TABLE f (id int, v text)');
      const before = await c.value('SELECT pg_walfile_name(pg_current_wal_lsn())');
      await c.sql("INSERT INTO f SELECT g, md5(g::text) FROM generate_series(1, 250000) g");
      await c.waitArchived(await c.switchWal());
      name = readdirSync(out)
        .filter((f) => /^[0-9A-F]{24}$/.test(f) && f > before)
        .sort()[0]!;
      seg = readFileSync(join(out, name));
    } finally {
      await c.destroy().catch(() => undefined);
    }
  });
  afterAll(async () => {
    if (dir) await removeTempDir(dir);
  });

  it('refuses it with the second half zeroed, at the offset recovery would stop, and archives the genuine one', async () => {
    expect(seg.length).toBe(16 * 1024 * 1024);
    const refused = await pushAlone('16', name, zeroedFrom(seg, 8 * 1024 * 1024));
    expect(refused.code, refused.stderr).toBe(3);
    const half = segNoFromLogSeg(parseWalFileName(name)!.logSeg!, seg.length) * seg.length + 8 * 1024 * 1024;
    expect(refused.stderr).toMatch(/is incomplete: valid WAL ends at offset \d+ of 16777216 \(LSN [0-9A-F]+\/[0-9A-F]+\)/);
    expect(refused.stderr).toContain(`(all-zero page at ${formatLsn(half)})`);
    expect(Number(/ends at offset (\d+)/.exec(refused.stderr)![1])).toBeLessThanOrEqual(8 * 1024 * 1024);
    const ok = await pushAlone('16', name, seg, join(a.work, 'repo-16'));
    expect(ok.code, ok.stderr).toBe(0);
  });
});
