/**
 * Rebuilding and syncing a catalog from the repository, on real WAL (33 segments of 1 MiB, each
 * with transactions): index blocks are written by push and read by rebuild (a damaged one is read
 * around); a rebuild killed midway leaves the catalog as it was; a catalog of the format before
 * the last two is upgraded (migrations 6 and 7) and synced; objects archived without their scan (older walship) are
 * indexed without their records, and read with --rescan. Every answer is compared with the
 * catalog the pushes made. And what a sync must not get wrong: a timeline another host archived
 * between two this catalog knows is found, a damaged object is left out (a gap, not a promise),
 * a repository that lost its identity does not empty the catalog; a damaged archived neighbour
 * does not stop archive-push.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WALSHIP_COMMAND } from './helpers/pg.js';
import { MIGRATIONS } from '../src/catalog/schema.js';
import { walship, type RunResult } from './helpers/walship.js';
import { makeWalFixture, type WalFixture } from './helpers/fixtures.js';
import { startS3rver, startTcpProxy, type S3rver } from './helpers/s3rver.js';
import { decodeObject, encodeObject } from '../src/archive/envelope.js';

let fx: WalFixture;
let work: string;
let repo: string;
let original: string;
const env = { WALSHIP_CONFIG: '/dev/null' };

/** walship (as this user) on `repoUrl` with `catalog`. */
const run = (catalog: string, args: string[], opts: { repoUrl?: string; env?: Record<string, string> } = {}) =>
  walship([...args, '--repo', opts.repoUrl ?? repo, '--catalog', catalog], { env: { ...env, ...opts.env } });

function ranges(r: RunResult): unknown {
  expect(r.code, r.stderr).toBe(0);
  const doc = JSON.parse(r.stdout) as Record<string, unknown>;
  delete doc.now;
  delete doc.stale;
  const lag = doc.archiveLag as { seconds?: number } | null;
  if (lag) delete lag.seconds;
  return doc;
}

beforeAll(async () => {
  fx = await makeWalFixture({ segments: 32 });
  work = mkdtempSync(join(tmpdir(), 'walship-rebuild-'));
  repo = join(work, 'repo');
  original = join(work, 'original.db');
  expect((await run(original, ['init'])).code).toBe(0);
  for (const f of fx.files) {
    const r = await run(original, ['archive-push', join(fx.dir, f), '--push-readahead', '0']);
    expect(r.code, r.stderr).toBe(0);
  }
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('index blocks', () => {
  it('are written by push for every 16 consecutive segments, and a rebuild reads them', async () => {
    // Segments 1 to 33 or so: segments 16 to 31 make the one complete block of 16 (0 to 15 lacks segment 0).
    const blocks = readdirSync(join(repo, 'index', '00000001'));
    expect(blocks).toEqual(['000000010000000000000010.16.zst']);
    const want = ranges(await run(original, ['ranges', '--json', '--no-sync']));
    const rebuilt = join(work, 'rebuilt.db');
    const r = await run(rebuilt, ['catalog', 'rebuild', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { files: number; blocks: number; requests: number };
    expect(out.files).toBe(fx.files.length);
    expect(out.blocks).toBe(blocks.length);
    expect(ranges(await run(rebuilt, ['ranges', '--json', '--no-sync']))).toEqual(want);
  });

  it('a damaged block is read around: its segments are read one by one, the answer the same', async () => {
    const dir = join(work, 'damaged');
    cpSync(repo, join(dir, 'repo'), { recursive: true });
    const damagedRepo = join(dir, 'repo');
    const block = readdirSync(join(damagedRepo, 'index', '00000001'))[0]!;
    const path = join(damagedRepo, 'index', '00000001', block);
    const bytes = readFileSync(path);
    bytes[bytes.length - 10] ^= 0xff;
    writeFileSync(path, bytes);
    const cat = join(dir, 'c.db');
    const r = await run(cat, ['catalog', 'rebuild', '--json'], { repoUrl: damagedRepo });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).damagedBlocks).toHaveLength(1);
    expect(r.stderr).toMatch(/damaged index blocks were read around/);
    expect(ranges(await run(cat, ['ranges', '--json', '--no-sync'], { repoUrl: damagedRepo }))).toEqual(ranges(await run(original, ['ranges', '--json', '--no-sync'])));
  });
});

describe('a catalog of the format before', () => {
  it('is upgraded, and syncs to the same answers', async () => {
    const old = join(work, 'old.db');
    const src = new Database(original, { readonly: true });
    await src.backup(old);
    src.close();
    const db = new Database(old);
    db.exec('ALTER TABLE wal_files DROP COLUMN scan_record; ALTER TABLE wal_scans DROP COLUMN first_record_prev; DROP TABLE index_blocks; DROP TABLE sync_state; DROP TABLE push_refusals; DROP INDEX wal_scans_needs_rescan; DROP TABLE expirations; DROP TABLE dropped_wal;');
    db.pragma('user_version = 5');
    db.close();
    expect(ranges(await run(old, ['ranges', '--json']))).toEqual(ranges(await run(original, ['ranges', '--json', '--no-sync'])));
    const upgraded = new Database(old, { readonly: true });
    expect(upgraded.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    upgraded.close();
  });
});

describe('objects archived without their scan', () => {
  it('are indexed without their records read, and with --rescan exactly as pushed', async () => {
    // The repository as older walship left it: no scan in the objects' metadata, no index blocks.
    const dir = join(work, 'older');
    const olderRepo = join(dir, 'repo');
    mkdirSync(dir);
    cpSync(repo, olderRepo, { recursive: true });
    rmSync(join(olderRepo, 'index'), { recursive: true, force: true });
    const walDir = join(olderRepo, 'wal', '0000000100000000');
    for (const name of readdirSync(walDir)) {
      const path = join(walDir, name);
      const { meta, raw } = await decodeObject(readFileSync(path));
      const { scan: _scan, bodySha256: _b, bodySize: _s, ...rest } = meta;
      writeFileSync(path, (await encodeObject(raw, rest, 1)).object);
    }
    const cat = join(dir, 'c.db');
    const plain = await run(cat, ['catalog', 'rebuild'], { repoUrl: olderRepo });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(new RegExp(`${fx.segments.length} segment\\(s\\) carry no scan .*--rescan reads them`));
    const unread = (await run(cat, ['ranges'], { repoUrl: olderRepo })).stdout;
    expect(unread).toMatch(/indexed without their records being read/);
    const rescanned = await run(cat, ['catalog', 'rebuild', '--rescan'], { repoUrl: olderRepo });
    expect(rescanned.code, rescanned.stderr).toBe(0);
    expect(rescanned.stdout).toMatch(new RegExp(`${fx.segments.length} segment\\(s\\) downloaded and scanned`));
    expect(ranges(await run(cat, ['ranges', '--json', '--no-sync'], { repoUrl: olderRepo }))).toEqual(ranges(await run(original, ['ranges', '--json', '--no-sync'])));
  });
});

describe('a rebuild killed midway', () => {
  let s3: S3rver;
  beforeAll(async () => {
    s3 = await startS3rver();
  });
  afterAll(async () => {
    await s3?.stop();
  });

  it('leaves the catalog as it was, and the next rebuild cleans up after it', async () => {
    const s3repo = s3.repoUrl('killed');
    const dir = mkdtempSync(join(work, 'killed-'));
    const pushed = join(dir, 'pushed.db');
    const half = Math.floor(fx.files.length / 2);
    for (const f of fx.files.slice(0, half)) expect((await run(pushed, ['archive-push', join(fx.dir, f), '--push-readahead', '0'], { repoUrl: s3repo, env: s3.env })).code).toBe(0);
    // A reader's catalog, synced with the first half; then the second half is pushed.
    const reader = join(dir, 'reader.db');
    const before = ranges(await run(reader, ['ranges', '--json'], { repoUrl: s3repo, env: s3.env }));
    for (const f of fx.files.slice(half)) expect((await run(pushed, ['archive-push', join(fx.dir, f), '--push-readahead', '0'], { repoUrl: s3repo, env: s3.env })).code).toBe(0);
    // Through a slow connection, the rebuild takes long enough to be killed while it builds.
    const proxy = await startTcpProxy({ target: s3.port, mode: () => 'slow', delayMs: 80 });
    try {
      const child = spawn(WALSHIP_COMMAND, ['catalog', 'rebuild', '--repo', s3repo, '--catalog', reader], { env: { ...process.env, ...env, ...s3.env, WALSHIP_S3_ENDPOINT: proxy.endpoint }, stdio: 'ignore' });
      const building = () => readdirSync(dir).some((n) => n.startsWith('reader.db.rebuild-'));
      for (const deadline = Date.now() + 30_000; !building(); ) {
        if (Date.now() > deadline) throw new Error('the rebuild did not start building');
        await new Promise((r) => setTimeout(r, 10));
      }
      await new Promise((r) => setTimeout(r, 150));
      child.kill('SIGKILL');
      await new Promise((r) => child.on('close', r));
    } finally {
      await proxy.close();
    }
    // Killed while it built (almost always), or after it swapped the new catalog in but before it
    // removed its build: the catalog is the old one or the new one, never a mix.
    expect(readdirSync(dir).some((n) => n.startsWith('reader.db.rebuild-'))).toBe(true);
    const after = ranges(await run(pushed, ['ranges', '--json', '--no-sync'], { repoUrl: s3repo, env: s3.env }));
    expect([before, after]).toContainEqual(ranges(await run(reader, ['ranges', '--json', '--no-sync'], { repoUrl: s3repo, env: s3.env })));
    const again = await run(reader, ['catalog', 'rebuild'], { repoUrl: s3repo, env: s3.env });
    expect(again.code, again.stderr).toBe(0);
    expect(readdirSync(dir).filter((n) => n.startsWith('reader.db.rebuild-'))).toEqual([]);
    expect(ranges(await run(reader, ['ranges', '--json', '--no-sync'], { repoUrl: s3repo, env: s3.env }))).toEqual(after);
    expect(existsSync(reader)).toBe(true);
  });
});

describe('what a sync must not get wrong', () => {
  const copyRepo = (name: string) => {
    const dir = join(work, name);
    mkdirSync(dir);
    cpSync(repo, join(dir, 'repo'), { recursive: true });
    return { dir, repoCopy: join(dir, 'repo') };
  };

  it('finds a timeline another host archived between two this catalog knows', async () => {
    const { dir, repoCopy } = copyRepo('between');
    const hostX = join(dir, 'x.db');
    expect((await run(hostX, ['catalog', 'rebuild'], { repoUrl: repoCopy })).code).toBe(0);
    const files = join(dir, 'files');
    mkdirSync(files);
    writeFileSync(join(files, '00000002.history'), '1\t0/3000000\tno recovery target specified\n');
    writeFileSync(join(files, '00000003.history'), '1\t0/3000000\tno recovery target specified\n2\t0/5000000\tno recovery target specified\n');
    // Host X pushes timeline 3's history; another host pushed timeline 2's.
    expect((await run(hostX, ['archive-push', join(files, '00000003.history')], { repoUrl: repoCopy })).code).toBe(0);
    expect((await run(join(dir, 'y.db'), ['archive-push', join(files, '00000002.history')], { repoUrl: repoCopy })).code).toBe(0);
    const synced = await run(hostX, ['catalog', 'sync', '--json'], { repoUrl: repoCopy });
    expect(synced.code, synced.stderr).toBe(0);
    expect(JSON.parse(synced.stdout).files).toBe(1);
    const info = JSON.parse((await run(hostX, ['info', '--json', '--no-sync'], { repoUrl: repoCopy })).stdout) as { historyFiles: string[] };
    expect(info.historyFiles).toEqual(['00000002.history', '00000003.history']);
  });

  it('leaves a damaged object out of the catalog, says so, and answers for the rest', async () => {
    const { dir, repoCopy } = copyRepo('damaged-object');
    // A segment outside the one index block (16 to 31), not the first: its entry comes from its own frame.
    const segs = readdirSync(join(repoCopy, 'wal', '0000000100000000')).filter((n) => /^[0-9A-F]{24}\.zst$/.test(n)).sort();
    const name = segs.find((n, i) => i > 0 && parseInt(n.slice(16, 24), 16) < 16)!.slice(0, 24);
    const key = `wal/0000000100000000/${name}.zst`;
    const path = join(repoCopy, key);
    const bytes = readFileSync(path);
    bytes.fill(0x55, 0, 16);
    writeFileSync(path, bytes);
    const cat = join(dir, 'c.db');
    const r = await run(cat, ['catalog', 'rebuild', '--json'], { repoUrl: repoCopy });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).damagedObjects).toEqual([key]);
    expect(r.stderr).toMatch(/an archived object is damaged: left out of the catalog/);
    const info = JSON.parse((await run(cat, ['info', '--json'], { repoUrl: repoCopy })).stdout) as { timelines: { gaps: { first: string; last: string }[] }[]; totals: { files: number } };
    expect(info.timelines[0]!.gaps).toEqual([expect.objectContaining({ first: name, last: name })]);
    expect(info.totals.files).toBe(fx.files.length - 1);
  });

  it('refuses to empty a catalog after a repository that lost its identity (a wrong or unmounted path), rebuild too', async () => {
    const { dir, repoCopy } = copyRepo('unmounted');
    const cat = join(dir, 'c.db');
    expect((await run(cat, ['catalog', 'rebuild'], { repoUrl: repoCopy })).code).toBe(0);
    const want = ranges(await run(cat, ['ranges', '--json', '--no-sync'], { repoUrl: repoCopy }));
    // The repository's filesystem is not mounted: an empty directory where it was.
    rmSync(repoCopy, { recursive: true });
    mkdirSync(repoCopy, { mode: 0o700 });
    for (const args of [['catalog', 'sync'], ['catalog', 'rebuild']]) {
      const r = await run(cat, args, { repoUrl: repoCopy });
      expect(r.code, args.join(' ')).toBe(6);
      expect(r.stderr).toMatch(/has no walship identity, but catalog .* lists what was archived there/);
    }
    expect(ranges(await run(cat, ['ranges', '--json', '--no-sync'], { repoUrl: repoCopy }))).toEqual(want);
  });
});

describe('a damaged archived neighbour', () => {
  it('does not stop archive-push: an identical re-push succeeds, and a new segment next to it is stored with a warning', async () => {
    const dir = join(work, 'damaged-neighbour');
    mkdirSync(dir);
    const own = join(dir, 'repo');
    const cat = join(dir, 'c.db');
    expect((await run(cat, ['init'], { repoUrl: own })).code).toBe(0);
    const [s1, s2, s3, s4] = fx.segments;
    for (const f of [s1!, s2!, s3!]) expect((await run(cat, ['archive-push', join(fx.dir, f), '--push-readahead', '0'], { repoUrl: own })).code).toBe(0);
    // The third segment's object is damaged; hosts with no catalog row read it from the repository.
    const path = join(own, 'wal', s3!.slice(0, 16), `${s3}.zst`);
    const bytes = readFileSync(path);
    bytes.fill(0x55, 0, 16);
    writeFileSync(path, bytes);
    const again = await run(join(dir, 'other.db'), ['archive-push', join(fx.dir, s2!), '--push-readahead', '0'], { repoUrl: own });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/already archived with identical content/);
    const next = await run(join(dir, 'third.db'), ['archive-push', join(fx.dir, s4!), '--push-readahead', '0'], { repoUrl: own });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/the archived neighbour is damaged: this file is not checked against it .*neighbour=/);
  });
});
