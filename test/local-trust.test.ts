/**
 * What another local user can do to walship's local state, tried with two real OS users: the
 * cluster's (who runs walship, as PostgreSQL would) and `walship-other`.
 *
 * - The prefetch spool: in a shared parent directory (sticky and world-writable, as /tmp is),
 *   the other user creates the spool directory first, or a symbolic link to a directory of
 *   theirs, with another cluster's segment and metadata forged to match it. archive-fetch must
 *   not deliver it (it warns and answers from the repository), on an S3 repository where no
 *   object stat could catch it.
 * - The read-ahead state beside a catalog in such a directory: a forged done-record must not
 *   make archive-push return 0 without archiving.
 * - A spool in a parent others may write without the sticky bit is not used either.
 * - The catalog: created 0600 with its -wal/-shm files, in a 0700 directory; an older 0644
 *   catalog is made private; one another user owns, or others may write, is refused.
 * - Repository directories are created 0700.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { otherUser, pgUser, removeTempDir, userTempDir, writeUserFile } from './helpers/pg.js';
import { walship } from './helpers/walship.js';
import { makeWalFixture, type WalFixture } from './helpers/fixtures.js';
import { fsBackend, s3Backend, type RepoBackend } from './helpers/backends.js';
import { shortHash } from '../src/archive/beside.js';

const isRoot = process.getuid?.() === 0;

let fx: WalFixture;
let other: WalFixture;
beforeAll(async () => {
  [fx, other] = await Promise.all([makeWalFixture({ segments: 3 }), makeWalFixture({ segments: 1 })]);
});

/** Runs `code` (CommonJS, with `fs`, `path`, `crypto` and `args` in scope) in node as the other user. */
function asOther(code: string, args: Record<string, unknown>): void {
  const u = otherUser();
  const r = spawnSync(process.execPath, ['-e', `const fs = require('fs'), path = require('path'), crypto = require('crypto'); const args = JSON.parse(process.env.ARGS); ${code}`], {
    uid: u.uid,
    gid: u.gid,
    cwd: '/',
    env: { PATH: process.env.PATH, ARGS: JSON.stringify(args) },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`as ${u.name}: ${r.stderr}`);
}

/**
 * As the other user: `spool` made (a directory, or with `linkTo` a symbolic link to a directory of
 * theirs) holding the file `from` as `name` and metadata that describes it exactly as the
 * prefetcher would, naming `repo`.
 */
function plantSpool(spool: string, name: string, from: string, repo: string, linkTo?: string): void {
  asOther(
    `const dir = args.linkTo ?? args.spool;
     fs.mkdirSync(dir, { recursive: true });
     if (args.linkTo) fs.symlinkSync(args.linkTo, args.spool);
     const data = fs.readFileSync(args.from);
     const file = path.join(dir, args.name);
     fs.writeFileSync(file, data);
     const st = fs.statSync(file, { bigint: true });
     const meta = { format: 2, name: args.name, repo: args.repo, size: data.length, sha256: crypto.createHash('sha256').update(data).digest('hex'),
       spooled_at: new Date().toISOString(), boot: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
       file_dev: st.dev, file_ino: st.ino, file_size: st.size, file_mtime_ns: st.mtimeNs, file_ctime_ns: st.ctimeNs };
     fs.writeFileSync(path.join(dir, args.name + '.meta'), Object.entries(meta).map(([k, v]) => k + '=' + v).join('\\n') + '\\n');
     fs.writeFileSync(path.join(dir, 'position'), args.name);`,
    { spool, name, from, repo, linkTo },
  );
}

/** A copy of another cluster's segment that the other user can read. */
function readableCopy(dir: string, src: string): string {
  const p = join(dir, 'foreign-segment');
  copyFileSync(src, p);
  chmodSync(p, 0o644);
  return p;
}

describe.skipIf(!isRoot)('the prefetch spool, planted by another user (S3 repository)', () => {
  const backend: RepoBackend = s3Backend();
  let work: string;
  let repo: string;
  let env: Record<string, string>;
  let shared: string;
  let data: string;
  let spool: string;
  let foreign: string;

  beforeAll(async () => {
    work = userTempDir('trust-spool');
    ({ repo, env } = await backend.setup(work));
    // The data directory's parent is shared: world-writable with the sticky bit, as /tmp is.
    shared = join(work, 'shared');
    mkdirSync(join(shared, 'data', 'pg_wal'), { recursive: true });
    for (const d of [shared, join(shared, 'data'), join(shared, 'data', 'pg_wal')]) chownSync(d, pgUser().uid, pgUser().gid);
    chmodSync(shared, 0o1777);
    data = join(shared, 'data');
    spool = join(shared, `walship-spool-${shortHash(realpathSync(join(data, 'pg_wal')))}`);
    foreign = readableCopy(work, join(other.dir, other.segments[0]!));
    // The repository holds fx's first two segments; the third is not archived.
    for (const s of fx.segments.slice(0, 2)) {
      const r = await walship(['archive-push', join(fx.dir, s), '--repo', repo, '--catalog', join(work, 'catalog.db')], { env, asUser: true });
      expect(r.code, r.stderr).toBe(0);
    }
  });
  afterAll(async () => {
    await backend.teardown?.();
    await removeTempDir(work);
  });

  const fetch = (name: string) =>
    walship(['archive-fetch', name, 'pg_wal/RECOVERYXLOG', '--repo', repo, '--catalog', join(work, 'catalog.db')], { env, cwd: data, asUser: true });
  const delivered = () => readFileSync(join(data, 'pg_wal', 'RECOVERYXLOG'));

  it('a spool directory another user made first is not used: a segment not archived stays "not in the archive"', async () => {
    const name = fx.segments[2]!;
    plantSpool(spool, name, foreign, repo);
    expect(statSync(spool).uid).toBe(otherUser().uid);
    const r = await fetch(name);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/the prefetch spool is not safe to use; fetching from the repository without prefetch .* problem="belongs to uid \d+, not to uid \d+ that walship runs as"/);
    expect(existsSync(join(data, 'pg_wal', 'RECOVERYXLOG'))).toBe(false);
    // An archived segment is delivered from the repository, byte for byte.
    const ok = await fetch(fx.segments[1]!);
    expect(ok.code, ok.stderr).toBe(0);
    expect(delivered().equals(fx.read(fx.segments[1]!))).toBe(true);
    // Nothing of the victim's was put into the other user's directory.
    expect(readdirSync(spool).sort()).toEqual([name, `${name}.meta`, 'position'].sort());
  });

  it('a symbolic link to another user\'s directory in the spool\'s place is not followed: the archived segment comes from the repository', async () => {
    rmSync(spool, { recursive: true, force: true });
    const theirs = join(work, 'theirs');
    mkdirSync(theirs);
    chownSync(theirs, otherUser().uid, otherUser().gid);
    const name = fx.segments[1]!;
    plantSpool(spool, name, foreign, repo, join(theirs, 'spool'));
    const r = await fetch(name);
    expect(r.code, r.stderr).toBe(0);
    expect(delivered().equals(readFileSync(foreign))).toBe(false);
    expect(delivered().equals(fx.read(name))).toBe(true);
    expect(r.stderr).toMatch(/the prefetch spool is not safe to use.* problem="is a symbolic link"/);
  });

  it('a spool in a parent others may write without the sticky bit is not used (they could swap it)', async () => {
    const open = join(work, 'open');
    mkdirSync(join(open, 'data', 'pg_wal'), { recursive: true });
    for (const d of [open, join(open, 'data'), join(open, 'data', 'pg_wal')]) chownSync(d, pgUser().uid, pgUser().gid);
    chmodSync(open, 0o777);
    const r = await walship(['archive-fetch', fx.segments[0]!, 'pg_wal/RECOVERYXLOG', '--repo', repo, '--catalog', join(work, 'catalog.db')], {
      env,
      cwd: join(open, 'data'),
      asUser: true,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/problem="its parent .* is writable by others without the sticky bit \(mode 0777\)"/);
    expect(readdirSync(open).filter((e) => e.startsWith('walship-spool-'))).toEqual([]);
  });
});

describe.skipIf(!isRoot)('local state planted by another user (filesystem repository)', () => {
  const backend = fsBackend();
  let work: string;
  let repo: string;
  let shared: string;

  beforeAll(async () => {
    work = userTempDir('trust-local');
    ({ repo } = await backend.setup(work));
    shared = join(work, 'shared');
    mkdirSync(shared);
    chownSync(shared, pgUser().uid, pgUser().gid);
    chmodSync(shared, 0o1777);
  });
  afterAll(async () => {
    await removeTempDir(work);
  });

  it('a forged read-ahead record beside a catalog in a shared directory does not make archive-push return 0 unarchived', async () => {
    // A pg_wal others can look into (a careless mount), with a .ready segment and another one.
    const data = join(work, 'data');
    const wal = join(data, 'pg_wal');
    mkdirSync(join(wal, 'archive_status'), { recursive: true });
    const [n1, n2] = fx.segments;
    for (const n of [n1!, n2!]) {
      writeUserFile(join(wal, n), fx.read(n), 0o644);
      writeUserFile(join(wal, 'archive_status', `${n}.ready`), '');
    }
    for (const d of [data, wal, join(wal, 'archive_status')]) chownSync(d, pgUser().uid, pgUser().gid);
    const catalog = join(shared, 'catalog.db');
    asOther(
      `fs.mkdirSync(args.state);
       const st = fs.statSync(args.file, { bigint: true });
       fs.writeFileSync(path.join(args.state, args.name), ['format=2', 'name=' + args.name, 'repo=' + args.repo, 'dir=' + args.dir,
         'file_dev=' + st.dev, 'file_ino=' + st.ino, 'file_size=' + st.size, 'file_mtime_ns=' + st.mtimeNs, 'file_ctime_ns=' + st.ctimeNs,
         'sha256=' + '0'.repeat(64), 'pushed_at=now'].join('\\n') + '\\n');`,
      { state: `${catalog}.readahead`, name: n1, repo: `file://${repo}`, dir: realpathSync(wal), file: join(wal, n1!) },
    );
    const r = await walship(['archive-push', `pg_wal/${n1}`, '--repo', repo, '--catalog', catalog], { cwd: data, asUser: true });
    expect(r.code, r.stderr).toBe(0);
    expect(await backend.listWalNames()).toContain(n1);
    expect(r.stderr).not.toMatch(/archived earlier by read-ahead/);
    expect(r.stderr).toMatch(/the read-ahead state directory is not safe to use; pushing without read-ahead .* problem="belongs to uid/);
    // Nothing of walship's went into the other user's directory (no pusher started there).
    expect(readdirSync(`${catalog}.readahead`)).toEqual([n1]);
  });

  it('the catalog: created 0600 with its -wal and -shm files in a 0700 directory; a 0644 one of ours made private; another user\'s, or a writable one, refused', async () => {
    const catalog = join(work, 'cat', 'sub', 'walship.db');
    const push = (cat: string) => walship(['archive-push', join(fx.dir, fx.segments[0]!), '--repo', repo, '--catalog', cat], { asUser: true });
    const r = await push(catalog);
    expect(r.code, r.stderr).toBe(0);
    const mode = (p: string) => statSync(p).mode & 0o777;
    expect(mode(catalog)).toBe(0o600);
    expect(mode(join(work, 'cat', 'sub'))).toBe(0o700);
    for (const c of ['-wal', '-shm']) if (existsSync(catalog + c)) expect(mode(catalog + c), c).toBe(0o600);
    // Repository directories walship created are its owner's alone.
    expect(mode(join(repo, 'wal', fx.segments[0]!.slice(0, 16)))).toBe(0o700);

    chmodSync(catalog, 0o644);
    expect((await push(catalog)).code).toBe(0);
    expect(mode(catalog)).toBe(0o600);

    chmodSync(catalog, 0o664);
    const writable = await push(catalog);
    expect(writable.code).toBe(7);
    expect(writable.stderr).toMatch(/catalog .* is writable by its group \(mode 0664\): walship uses only a catalog of the user it runs as that no one else can write .*code=CATALOG_ERROR/);
    chmodSync(catalog, 0o600);

    // A catalog another user made (in a directory both may write) is not used: push refuses,
    // fetch (for which the catalog is only an extra check) warns and delivers.
    const theirs = join(shared, 'theirs.db');
    asOther('fs.writeFileSync(args.path, "", { mode: 0o666 }); fs.chmodSync(args.path, 0o666);', { path: theirs });
    const refused = await push(theirs);
    expect(refused.code).toBe(7);
    expect(refused.stderr).toMatch(/catalog .*theirs\.db belongs to uid \d+, not to uid \d+ that walship runs as/);
    const dest = join(work, 'fetched');
    mkdirSync(dest);
    chownSync(dest, pgUser().uid, pgUser().gid);
    const f = await walship(['archive-fetch', fx.segments[0]!, join(dest, 'seg'), '--repo', repo, '--catalog', theirs], { asUser: true });
    expect(f.code, f.stderr).toBe(0);
    expect(f.stderr).toMatch(/catalog not usable; verifying against the object's own checksum only/);
    expect(readFileSync(theirs).length).toBe(0);
  });
});
