/**
 * walship verify, end to end, per repository backend: a real cluster archives and takes a backup;
 * verify finds everything sound, then reads only what is new (on any host: what it verified is
 * recorded in the repository); `--full` reads every stored byte, checking in depth only what no
 * earlier verify did, `--deep` everything; an object a push replaced is read again in depth; a
 * damaged segment, a damaged and a missing backup chunk, a missing segment, a planted temporary
 * file and an object nothing names are each found and named, the damage with exit 8.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pgUser } from './helpers/pg.js';
import { walship, type RunResult } from './helpers/walship.js';
import { startArchiving, type Archiving } from './helpers/archiving.js';
import { repoBackends, type RepoBackend } from './helpers/backends.js';

interface Report {
  full: boolean;
  deep: boolean;
  checked: { walFiles: number; backups: number; bytes: number; rawBytes: number; unchanged: number };
  skipped: { walFiles: number; backups: number };
  problems: { kind: string; what: string; detail: string }[];
  failures: number;
}

describe.each(repoBackends())('walship verify ($name repository)', (backend: RepoBackend) => {
  let a: Archiving;
  let backupId: string;

  const on = (catalog: string, args: string[]) => walship([...args, '--repo', a.repo, '--catalog', catalog], { env: a.env, asUser: true });
  const verify = async (args: string[] = [], catalog = a.catalog): Promise<{ r: RunResult; doc: Report }> => {
    const r = await on(catalog, ['verify', '--json', ...args]);
    expect([0, 8], r.stderr).toContain(r.code);
    return { r, doc: JSON.parse(r.stdout) as Report };
  };
  const walKeys = async () => {
    const out: string[] = [];
    for await (const o of backend.driver().list('wal/')) if (/\/[0-9A-F]{24}\.zst$/.test(o.key)) out.push(o.key);
    return out;
  };

  beforeAll(async () => {
    a = await startArchiving(backend, 'verify');
    const p = a.primary;
    await p.sql('CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 20000) g');
    const b = await a.run(['backup', '--json'], a.pgEnv());
    expect(b.code, b.stderr).toBe(0);
    backupId = JSON.parse(b.stdout).id;
    await p.sql('INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g');
    await p.waitArchived(await p.switchWal());
  });

  afterAll(async () => {
    await a?.cleanup();
  });

  it('finds everything sound, then reads only what is new, on any host', async () => {
    const first = await verify();
    expect(first.r.code).toBe(0);
    expect(first.doc.failures).toBe(0);
    expect(first.doc.checked.walFiles).toBeGreaterThan(3);
    expect(first.doc.checked.backups).toBe(1);
    const again = await verify();
    expect(again.doc.checked).toEqual({ walFiles: 0, backups: 0, bytes: 0, rawBytes: 0, unchanged: 0 });
    expect(again.doc.skipped.walFiles).toBe(first.doc.checked.walFiles);
    // Two more segments: only they are read, here and from another host's new catalog.
    await a.primary.sql('INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100) g');
    await a.primary.switchWal();
    await a.primary.sql('INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100) g');
    await a.primary.waitArchived(await a.primary.switchWal());
    const dir = join(a.work, 'host-b');
    mkdirSync(dir);
    chownSync(dir, pgUser().uid, pgUser().gid);
    const other = await verify([], join(dir, 'catalog.db'));
    expect(other.doc.checked.walFiles).toBe(2);
    expect(other.doc.checked.backups).toBe(0);
    expect((await verify()).doc.checked.walFiles).toBe(0);
    // Text: one line saying what was read.
    const text = await on(a.catalog, ['verify']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^verify: read 0 WAL file\(s\) and 0 backup\(s\).*not read again/);
    expect(text.stdout).toMatch(/no damaged or missing object/);
  });

  it('--full reads every stored byte, in depth only what no verify checked so; --deep everything; a replaced object is read again', async () => {
    const { doc: full } = await verify(['--full']);
    expect(full.failures).toBe(0);
    expect(full.full).toBe(true);
    expect(full.deep).toBe(false);
    expect(full.checked.backups).toBe(1);
    // Every WAL object was checked in depth before: each is proven unchanged, none decompressed,
    // and the backup's chunks by their stored checksums.
    expect(full.checked.unchanged).toBe(full.checked.walFiles);
    expect(full.checked.rawBytes).toBe(0);
    const { doc: deep } = await verify(['--deep']);
    expect(deep.failures).toBe(0);
    expect(deep.deep).toBe(true);
    expect(deep.checked.walFiles).toBe(full.checked.walFiles);
    expect(deep.checked.bytes).toBe(full.checked.bytes);
    expect(deep.checked.unchanged).toBe(0);
    expect(deep.checked.rawBytes).toBeGreaterThan(deep.checked.bytes);
    // A push that replaced an object leaves a marker: the next verify reads that object in depth.
    const seg = (await walKeys())[3]!;
    const name = seg.slice(seg.lastIndexOf('/') + 1, -'.zst'.length);
    await backend.overwrite(`verify/recheck/${name}`, Buffer.from('now\n'));
    const re = await verify();
    expect(re.doc.checked.walFiles).toBe(1);
    expect(re.doc.checked.rawBytes).toBeGreaterThan(0);
    expect(await backend.driver().get(`verify/recheck/${name}`)).toBeNull();
    expect((await verify()).doc.checked.walFiles).toBe(0);
  });

  it('names a damaged segment, a missing chunk, a missing segment, a planted temporary file and an orphan', async () => {
    const segs = await walKeys();
    const damaged = segs[1]!;
    const obj = (await backend.driver().get(damaged))!;
    obj[obj.length - 100] ^= 0xff; // in the compressed data
    await backend.overwrite(damaged, obj);
    const lost = segs[2]!;
    await backend.remove(lost);
    await backend.remove(`backups/${backupId}/chunk-000001.tar.zst`);
    // The last chunk (backup_label), damaged: --full finds it by its stored checksum, --deep by its content.
    const chunks = (await backend.driver().children(`backups/${backupId}/`)).filter((n) => n.startsWith('chunk-')).sort();
    const lastChunk = `backups/${backupId}/${chunks[chunks.length - 1]!}`;
    const chunk = (await backend.driver().get(lastChunk))!;
    chunk[chunk.length - 8] ^= 0xff;
    await backend.overwrite(lastChunk, chunk);
    await backend.driver().putIfAbsent('wal/notes.txt', Buffer.from('left by hand'));
    if (backend.name === 'filesystem') {
      const tmp = join(a.repo, segs[0]!.slice(0, segs[0]!.lastIndexOf('/')), '.000000010000000000000009.zst.4242.0123abcd.tmp');
      writeFileSync(tmp, 'half');
    }
    // An incremental verify knows those objects were sound: only --full reads them again.
    expect((await verify()).r.code).toBe(0);
    const { r, doc } = await verify(['--full']);
    expect(r.code).toBe(8);
    const find = (kind: string, what: string) => doc.problems.find((p) => p.kind === kind && p.what === what);
    expect(find('damaged', damaged), JSON.stringify(doc.problems)).toBeDefined();
    expect(find('missing', lost)).toBeDefined();
    expect(find('missing', `backups/${backupId}/chunk-000001.tar.zst`)).toBeDefined();
    expect(find('orphan', 'wal/notes.txt')).toBeDefined();
    if (backend.name === 'filesystem') expect(doc.problems.some((p) => p.kind === 'leftover' && p.what.endsWith('.0123abcd.tmp'))).toBe(true);
    expect(find('damaged', lastChunk), JSON.stringify(doc.problems)).toBeDefined();
    expect(doc.failures).toBe(4);
    const deep = await verify(['--deep']);
    expect(deep.r.code).toBe(8);
    expect(deep.doc.problems.filter((p) => p.kind !== 'leftover' && p.kind !== 'orphan').map((p) => `${p.kind} ${p.what}`).sort()).toEqual(
      doc.problems.filter((p) => p.kind !== 'leftover' && p.kind !== 'orphan').map((p) => `${p.kind} ${p.what}`).sort(),
    );
    const text = await on(a.catalog, ['verify', '--full']);
    expect(text.code).toBe(8);
    expect(text.stdout).toContain(`DAMAGED  ${damaged}:`);
    expect(text.stdout).toMatch(/4 problem\(s\)/);
    // What failed is read again by the next incremental verify.
    const next = await verify();
    expect(next.r.code).toBe(8);
    expect(next.doc.checked.backups).toBe(1);
  });
});
