/**
 * archive-push / archive-fetch / info through the real CLI, on real WAL, against every
 * repository backend: the happy paths, every kind of bad input with its documented exit code
 * and message, and proof that a refused push changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { removeTempDir, userTempDir } from './helpers/pg.js';
import { walship, type RunResult } from './helpers/walship.js';
import { makeTwinFixtures, makeWalFixture, type WalFixture } from './helpers/fixtures.js';
import { repoBackends, type RepoBackend } from './helpers/backends.js';

let fx: WalFixture;
let other: WalFixture;
let twins: [WalFixture, WalFixture];

beforeAll(async () => {
  [fx, other, twins] = await Promise.all([makeWalFixture({ segments: 3 }), makeWalFixture({ segments: 1 }), makeTwinFixtures()]);
});

describe.each(repoBackends())('archive CLI ($name repository)', (backend: RepoBackend) => {
  let work: string;
  let repo: string;
  let env: Record<string, string>;
  let catalog: string;
  let inbox: string;

  const run = (args: string[], extra: { cwd?: string; env?: Record<string, string>; asUser?: boolean } = {}) =>
    walship([...args, '--repo', repo, '--catalog', catalog], { env: { ...env, ...extra.env }, cwd: extra.cwd, asUser: extra.asUser });
  const push = (path: string) => run(['archive-push', path]);
  /** A copy of a fixture file under `name` in a scratch dir, optionally transformed. */
  const stage = (src: Buffer, name: string): string => {
    const p = join(inbox, name);
    writeFileSync(p, src);
    return p;
  };
  const catalogRows = (): unknown[] => {
    if (!existsSync(catalog)) return [];
    const db = new Database(catalog, { readonly: true });
    try {
      return db.prepare('SELECT * FROM wal_files ORDER BY name').all();
    } finally {
      db.close();
    }
  };
  const state = async () => ({ repo: (await backend.listWalNames()).sort(), catalog: catalogRows() });
  const expectRefused = async (r: RunResult, code: number, errCode: string, pattern: RegExp, before: unknown) => {
    expect(r.code, r.stderr).toBe(code);
    expect(r.stderr).toContain(`code=${errCode}`);
    expect(r.stderr).toMatch(pattern);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await state()).toEqual(before);
  };

  beforeAll(async () => {
    work = userTempDir('cli');
    ({ repo, env } = await backend.setup(work));
    catalog = join(work, 'catalog.db');
    inbox = join(work, 'inbox');
    mkdirSync(inbox);
  });
  afterAll(async () => {
    await backend.teardown?.();
    await removeTempDir(work);
  });

  it('archives a segment, then accepts an identical re-push', async () => {
    const seg = fx.segments[0]!;
    const r1 = await push(join(fx.dir, seg));
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.stderr).toMatch(new RegExp(`archived file=${seg}`));
    const r2 = await push(join(fx.dir, seg));
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stderr).toMatch(/already archived with identical content/);
    expect(await backend.listWalNames()).toEqual([seg]);
    expect(catalogRows()).toHaveLength(1);
  });

  it('archives every file kind the server produces: segments and .backup files', async () => {
    for (const f of fx.files) {
      const r = await push(join(fx.dir, f));
      expect(r.code, `${f}: ${r.stderr}`).toBe(0);
    }
    expect((await backend.listWalNames()).sort()).toEqual([...fx.files].sort());
  });

  it('delivers an archived segment byte for byte, relative to the working directory', async () => {
    const seg = fx.segments[1]!;
    // The data directory's parent is this (root) process's: the spool beside it is one it may use.
    const dataDir = join(work, 'own', 'pgdata');
    mkdirSync(join(dataDir, 'pg_wal'), { recursive: true });
    const r = await run(['archive-fetch', seg, 'pg_wal/RECOVERYXLOG'], { cwd: dataDir });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(dataDir, 'pg_wal', 'RECOVERYXLOG')).equals(fx.read(seg))).toBe(true);
    expect(r.stderr).toBe('');
  });

  it('still delivers, with a warning, when the catalog exists but cannot be opened', async () => {
    // As when a restored server runs as another OS user than the one who owns the catalog;
    // here the "catalog" is a directory, which no user can open as a database.
    const notADatabase = join(work, 'inbox');
    const dest = join(work, 'via-unusable-catalog');
    const r = await walship(['archive-fetch', fx.segments[0]!, dest, '--repo', repo, '--catalog', notADatabase], { env });
    expect(r.code, `${r.code} ${r.stderr}`).toBe(0);
    expect(r.stderr).toMatch(/catalog not usable; verifying against the object's own checksum only/);
    expect(readFileSync(dest).equals(fx.read(fx.segments[0]!))).toBe(true);
  });

  it('answers "not in the archive" with exit 1, quietly', async () => {
    const r = await run(['archive-fetch', '0000000100000000000000FE', join(work, 'x')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
    expect(existsSync(join(work, 'x'))).toBe(false);
    const h = await run(['archive-fetch', '00000009.history', join(work, 'x')]);
    expect(h.code).toBe(1);
  });

  it('reports what it holds with info --json', async () => {
    const r = await run(['info', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.repository.systemIdentifier).toBe(fx.systemIdentifier);
    expect(info.repository.walSegmentSize).toBe(1024 * 1024);
    expect(info.repository.pgMajor).toBe(15);
    expect(info.timelines).toHaveLength(1);
    expect(info.timelines[0].ranges).toHaveLength(1);
    expect(info.timelines[0].ranges[0].count).toBe(fx.segments.length);
    expect(info.backups).toHaveLength(fx.files.length - fx.segments.length);
    const text = await run(['info']);
    expect(text.stdout).toMatch(/timeline 1: \d+ segments/);
  });

  it('refuses a file that is not WAL (exit 3), changing nothing', async () => {
    const before = await state();
    await expectRefused(await push(stage(Buffer.from('hello'), 'notes.txt')), 3, 'NOT_WAL', /is not a WAL file name/, before);
    await expectRefused(await push(stage(Buffer.alloc(8192, 7), '000000010000000000000042')), 3, 'INVALID_WAL', /unknown page magic/, before);
  });

  it('refuses a truncated segment (exit 3)', async () => {
    const before = await state();
    const seg = fx.segments[2]!;
    const half = fx.read(seg).subarray(0, 512 * 1024);
    // Under a fresh name, and under the archived name: neither may be stored.
    const fresh = '0000000100000000000000' + 'A0';
    await expectRefused(await push(stage(half, fresh)), 3, 'INVALID_WAL', /truncated/, before);
    await expectRefused(await push(stage(half, seg)), 3, 'INVALID_WAL', /truncated/, before);
  });

  it('refuses a segment whose content does not match its name (exit 3)', async () => {
    const before = await state();
    const renamed = '0000000100000000000000B0';
    await expectRefused(await push(stage(fx.read(fx.segments[0]!), renamed)), 3, 'INVALID_WAL', /the name says/, before);
    // A damaged page address in the middle of the segment.
    const bad = Buffer.from(fx.read(fx.segments[0]!));
    bad.writeUInt32LE(bad.readUInt32LE(8192 * 5 + 8) + 8192, 8192 * 5 + 8);
    await expectRefused(await push(stage(bad, fx.segments[0]!)), 3, 'INVALID_WAL', /page 5 claims address/, before);
  });

  it('refuses a segment from another cluster (exit 5)', async () => {
    const before = await state();
    const seg = other.segments[0]!;
    await expectRefused(await push(join(other.dir, seg)), 5, 'WRONG_CLUSTER', new RegExp(`system identifier ${other.systemIdentifier}.*belongs to.*${fx.systemIdentifier}`), before);
  });

  it('refuses different content under an archived name (exit 4), keeping the original', async () => {
    // Twins share a system identifier and segment names: a second cluster cloned from the first.
    const [a, b] = twins;
    const seg = a.segments[a.segments.length - 1]!;
    expect(b.segments).toContain(seg);
    expect(a.read(seg).equals(b.read(seg))).toBe(false);
    const twinRepo = join(work, 'twin-repo');
    mkdirSync(twinRepo);
    const tw = (args: string[]) => walship([...args, '--repo', twinRepo, '--catalog', join(work, 'twin.db')], { env });
    expect((await tw(['archive-push', join(a.dir, seg)])).code).toBe(0);
    const r = await tw(['archive-push', join(b.dir, seg)]);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/code=WAL_CONFLICT/);
    expect(r.stderr).toMatch(/already archived with different content \(archived sha256 [0-9a-f]{64}, this file sha256 [0-9a-f]{64}\)/);
    const out = join(work, 'check');
    expect((await tw(['archive-fetch', seg, out])).code).toBe(0);
    expect(readFileSync(out).equals(a.read(seg))).toBe(true);
  });

  it('fails hard (255, or 3 with fetch_on_error = retry) on a corrupted archived object', async () => {
    const seg = fx.segments[1]!;
    const key = `wal/${seg.slice(0, 16)}/${seg}.zst`;
    const original = (await backend.driver().get(key))!;
    try {
      const flipped = Buffer.from(original);
      flipped[flipped.length - 40] ^= 0x55;
      await backend.overwrite(key, flipped);
      const dest = join(work, 'corrupt-out');
      const r = await run(['archive-fetch', seg, dest]);
      expect(r.code, r.stderr).toBe(255);
      expect(r.stderr).toMatch(/code=OBJECT_CORRUPT/);
      expect(r.stderr).toMatch(new RegExp(`archived ${seg} .* is damaged`));
      expect(existsSync(dest)).toBe(false);
      const retry = await run(['archive-fetch', seg, dest], { env: { WALSHIP_FETCH_ON_ERROR: 'retry' } });
      expect(retry.code).toBe(3);
      // Truncated object (e.g. a partial upload by some other tool).
      await backend.overwrite(key, original.subarray(0, original.length >> 1));
      expect((await run(['archive-fetch', seg, dest])).code).toBe(255);
    } finally {
      await backend.overwrite(key, original);
    }
  });

  it("records the compressed data's checksum, and refuses an object forged to claim the catalog's file checksum (255)", async () => {
    const [a, b] = [fx.segments[0]!, fx.segments[2]!];
    for (const seg of [a, b]) expect((await push(join(fx.dir, seg))).code).toBe(0);
    const key = (seg: string) => `wal/${seg.slice(0, 16)}/${seg}.zst`;
    const [objA, objB] = [(await backend.driver().get(key(a)))!, (await backend.driver().get(key(b)))!];
    const { decodeMeta, sha256 } = await import('../src/archive/envelope.js');
    const rowA = catalogRows().find((r) => (r as { name: string }).name === a) as { sha256: string; body_sha256: string };
    expect(rowA.body_sha256).toBe(sha256(objA.subarray(decodeMeta(objA).bodyOffset)));
    // B's data under A's name, its metadata claiming A's name and file checksum; B's own
    // compressed-data checksum keeps it self-consistent.
    const { meta, bodyOffset } = decodeMeta(objB);
    const json = Buffer.from(JSON.stringify({ ...meta, name: a, sha256: rowA.sha256 }));
    const head = Buffer.alloc(8);
    head.writeUInt32LE(0x184d2a57, 0);
    head.writeUInt32LE(json.length, 4);
    try {
      await backend.overwrite(key(a), Buffer.concat([head, json, objB.subarray(bodyOffset)]));
      const dest = join(work, 'forged-out');
      const r = await run(['archive-fetch', a, dest]);
      expect(r.code, r.stderr).toBe(255);
      expect(r.stderr).toMatch(/code=OBJECT_CORRUPT/);
      expect(r.stderr).toMatch(/compressed data's checksum [0-9a-f]{64} differs from the catalog's/);
      expect(existsSync(dest)).toBe(false);
    } finally {
      await backend.overwrite(key(a), objA);
    }
  });

  it('replaces a damaged archived copy when the identical file is pushed again', async () => {
    const seg = fx.segments[1]!;
    const key = `wal/${seg.slice(0, 16)}/${seg}.zst`;
    const original = (await backend.driver().get(key))!;
    await backend.overwrite(key, original.subarray(0, original.length - 1000)); // an interrupted upload
    const dest = join(work, 'repaired-out');
    expect((await run(['archive-fetch', seg, dest])).code).toBe(255);
    const r = await push(join(fx.dir, seg));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/archived copy is damaged; replacing it/);
    // The next verify is asked to read the new object in depth (verify.test.ts reads such a marker).
    expect(await backend.driver().get(`verify/recheck/${seg}`)).not.toBeNull();
    expect((await run(['archive-fetch', seg, dest])).code).toBe(0);
    expect(readFileSync(dest).equals(fx.read(seg))).toBe(true);
    // A copy too damaged to tell what it held is never replaced.
    await backend.overwrite(key, Buffer.from('garbage'));
    const g = await push(join(fx.dir, seg));
    expect(g.code).toBe(8);
    expect(g.stderr).toMatch(/is unreadable .* leaves it alone/);
    await backend.overwrite(key, original);
  });

  it('fails hard when the catalog says a file was archived but the object is gone', async () => {
    const seg = fx.segments[2]!;
    const key = `wal/${seg.slice(0, 16)}/${seg}.zst`;
    const original = (await backend.driver().get(key))!;
    await backend.remove(key);
    try {
      const r = await run(['archive-fetch', seg, join(work, 'lost')]);
      expect(r.code).toBe(255);
      expect(r.stderr).toMatch(/code=OBJECT_LOST/);
    } finally {
      await backend.overwrite(key, original);
    }
  });

  it('names a missing or malformed setting in one line (exit 2; archive-fetch 255)', async () => {
    const noRepo = await walship(['archive-push', join(fx.dir, fx.segments[0]!)], { env: { ...env } });
    expect(noRepo.code).toBe(2);
    expect(noRepo.stderr).toMatch(/no repository configured: pass --repo, set WALSHIP_REPO/);
    const fetchNoRepo = await walship(['archive-fetch', fx.segments[0]!, join(work, 'y')], { env: { ...env } });
    expect(fetchNoRepo.code).toBe(255);
    const conf = join(work, 'bad.conf');
    writeFileSync(conf, `repo = '${repo}'\ncompress_level = fast\n`);
    const badConf = await walship(['info', '--config', conf], { env });
    expect(badConf.code).toBe(2);
    expect(badConf.stderr).toMatch(/invalid compress_level = 'fast'/);
    writeFileSync(conf, `repo = '${repo}'\ncompres_level = 3\n`);
    const typo = await walship(['info', '--config', conf], { env });
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/bad\.conf:2: unknown setting "compres_level" \(did you mean compress_level\?\)/);
    // The same typo in a variable is warned of (and ignored), naming the setting it resembles.
    const envTypo = await run(['info'], { env: { WALSHIP_COMPRES_LEVEL: '3' } });
    expect(envTypo.code, envTypo.stderr).toBe(0);
    expect(envTypo.stderr).toMatch(/WARN \[info\] environment variable WALSHIP_COMPRES_LEVEL is not a walship setting and is ignored \(did you mean WALSHIP_COMPRESS_LEVEL\?\)/);
  });

  it('reads settings from a config file, with flags and environment taking precedence', async () => {
    const conf = join(work, 'walship.conf');
    writeFileSync(conf, `# test\nrepo = '${repo}'\ncatalog = '${catalog}'\n`);
    const viaFile = await walship(['info', '--json'], { env: { ...env, WALSHIP_CONFIG: conf } });
    expect(viaFile.code, viaFile.stderr).toBe(0);
    expect(JSON.parse(viaFile.stdout).catalog).toBe(catalog);
    const otherCatalog = join(work, 'env-catalog.db');
    const viaEnv = await walship(['info', '--json'], { env: { ...env, WALSHIP_CONFIG: conf, WALSHIP_CATALOG: otherCatalog } });
    expect(JSON.parse(viaEnv.stdout).catalog).toBe(otherCatalog);
    const flagCatalog = join(work, 'flag-catalog.db');
    const viaFlag = await walship(['info', '--json', '--catalog', flagCatalog], { env: { ...env, WALSHIP_CONFIG: conf, WALSHIP_CATALOG: otherCatalog } });
    expect(JSON.parse(viaFlag.stdout).catalog).toBe(flagCatalog);
  });

  it('refuses a catalog that indexes another repository (exit 7)', async () => {
    const cat2 = join(work, 'cat2.db');
    const otherRepo = join(work, 'repo-other');
    mkdirSync(otherRepo);
    expect((await walship(['init', '--repo', otherRepo, '--catalog', cat2], { env })).code).toBe(0);
    const r = await walship(['info', '--repo', repo, '--catalog', cat2], { env });
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/indexes repository .*repo-other, not/);
  });

  it('fails with 6 (push) and 255 (fetch) when the repository path is missing or unreadable', async () => {
    if (backend.name !== 'filesystem') return;
    const seg = join(fx.dir, fx.segments[0]!);
    const missing = join(work, 'no-such-repo');
    const r1 = await walship(['archive-push', seg, '--repo', missing, '--catalog', join(work, 'c3.db')]);
    expect(r1.code).toBe(6);
    expect(r1.stderr).toMatch(/does not exist: create it with "walship init"/);
    const f1 = await walship(['archive-fetch', fx.segments[0]!, join(work, 'z'), '--repo', missing, '--catalog', join(work, 'c3.db')]);
    expect(f1.code).toBe(255);
    // Unreadable for the user PostgreSQL runs as.
    const locked = join(work, 'locked-repo');
    mkdirSync(locked);
    copyFileSync(join(repo, 'identity.json'), join(locked, 'identity.json'));
    chmodSync(locked, 0o000);
    try {
      const asPg = { asUser: true, env: { WALSHIP_CATALOG: join(work, 'c4.db') } } as const;
      const p = await walship(['archive-push', seg, '--repo', locked], asPg);
      expect(p.code).toBe(6);
      expect(p.stderr).toMatch(/EACCES.*code=REPOSITORY_UNAVAILABLE/);
      const f = await walship(['archive-fetch', fx.segments[0]!, join(work, 'z2'), '--repo', locked], asPg);
      expect(f.code).toBe(255);
    } finally {
      chmodSync(locked, 0o755);
    }
  });
});
