/**
 * Push read-ahead (src/archive/readahead.ts, pusher.ts): a call for one segment starts the
 * background pusher, which pushes the `.ready` ones; PostgreSQL's calls for them are answered
 * from its done-records; a file changed since is pushed (or refused) as without read-ahead; a
 * background push that fails never fails another file's call. First through the CLI on a staged pg_wal, then through PostgreSQL's own
 * archiver catching up a backlog. Runs once per repository backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { PgCluster, confString, pgUser, removeTempDir, userTempDir, walshipCommand } from './helpers/pg.js';
import { walship } from './helpers/walship.js';
import { makeWalFixture, type WalFixture } from './helpers/fixtures.js';
import { repoBackends, type RepoBackend } from './helpers/backends.js';
import { parseRecord } from '../src/archive/readahead.js';

let fx: WalFixture;
beforeAll(async () => {
  fx = await makeWalFixture({ segments: 7 });
});

/** A data directory with pg_wal holding `files` (name → bytes), each marked .ready. */
function stagePgWal(dir: string, files: [string, Buffer][]): string {
  const u = pgUser();
  mkdirSync(join(dir, 'pg_wal', 'archive_status'), { recursive: true });
  for (const d of [dir, join(dir, 'pg_wal'), join(dir, 'pg_wal', 'archive_status')]) chownSync(d, u.uid, u.gid);
  for (const [name, bytes] of files) {
    writeFileSync(join(dir, 'pg_wal', name), bytes, { mode: 0o600 });
    writeFileSync(join(dir, 'pg_wal', 'archive_status', `${name}.ready`), '');
    chownSync(join(dir, 'pg_wal', name), u.uid, u.gid);
    chownSync(join(dir, 'pg_wal', 'archive_status', `${name}.ready`), u.uid, u.gid);
  }
  return dir;
}

async function waitFor(cond: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the background pusher');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** What PostgreSQL does once archive_command succeeded. */
function markDone(dir: string, name: string): void {
  const status = join(dir, 'pg_wal', 'archive_status');
  renameSync(join(status, `${name}.ready`), join(status, `${name}.done`));
}

describe.each(repoBackends())('push read-ahead through the CLI ($name repository)', (backend: RepoBackend) => {
  let work: string;
  let repo: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    work = userTempDir('readahead');
    ({ repo, env } = await backend.setup(work));
  });
  afterAll(async () => {
    await backend.teardown?.();
    await removeTempDir(work);
  });

  /** One staged pg_wal with its own catalog (so its own background pusher). */
  const staged = (tag: string, files: [string, Buffer][]) => {
    const data = stagePgWal(join(work, `staged-${tag}`), files);
    const catalog = join(work, `catalog-${tag}`, 'walship.db');
    const stateDir = `${catalog}.readahead`;
    return {
      data,
      stateDir,
      run: (args: string[], extra: string[] = []) => walship([...args, '--repo', repo, '--catalog', catalog, ...extra], { env, cwd: data, asUser: true }),
      /** The done-records (not the pusher's lock, log and markers). */
      records: () => (existsSync(stateDir) ? readdirSync(stateDir).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort() : []),
      pusherLog: () => (existsSync(join(stateDir, 'pusher.log')) ? readFileSync(join(stateDir, 'pusher.log'), 'utf8') : ''),
    };
  };
  const archived = async (name: string): Promise<Buffer | null> => {
    const obj = await backend.driver().get(`wal/${name.slice(0, 16)}/${name}.zst`);
    if (!obj) return null;
    const { decodeObject } = await import('../src/archive/envelope.js');
    return (await decodeObject(obj)).raw;
  };

  it('pushes the .ready segments in the background, at most push_readahead not yet done, and answers the calls from its records', async () => {
    const segs = fx.segments.slice(0, 4);
    const s = staged('a', segs.map((n) => [n, fx.read(n)]));
    const first = await s.run(['archive-push', `pg_wal/${segs[0]}`], ['--push-readahead', '2']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(new RegExp(`archived by the background pusher file=${segs[0]}`));
    // The pusher goes on with the next one, and stops at two pushed that PostgreSQL has not marked done.
    await waitFor(() => s.records().length === 2);
    expect(s.records()).toEqual([segs[0], segs[1]]);
    const rec = parseRecord(readFileSync(join(s.stateDir, segs[1]!), 'utf8'));
    expect(rec).toMatchObject({ name: segs[1], size: String(fx.read(segs[1]!).length) });
    expect(rec!.sha256).toMatch(/^[0-9a-f]{64}$/);

    // PostgreSQL marks N done: its record goes, the pusher takes the next one; the call for N+1
    // is answered from its record without pushing.
    markDone(s.data, segs[0]!);
    await waitFor(() => s.records().join() === [segs[1], segs[2]].join());
    const second = await s.run(['archive-push', `pg_wal/${segs[1]}`], ['--push-readahead', '2']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(new RegExp(`archived earlier by read-ahead file=${segs[1]}`));
    expect(second.stderr).not.toMatch(/archived file=/);
    expect(await archived(segs[3]!)).toBeNull();
    for (const n of segs.slice(0, 3)) expect((await archived(n))!.equals(fx.read(n))).toBe(true);
    // PostgreSQL's status files are only read: .ready stays until PostgreSQL renames it.
    expect(existsSync(join(s.data, 'pg_wal', 'archive_status', `${segs[1]}.ready`))).toBe(true);
    expect(s.pusherLog()).toMatch(/background pusher started/);
  });

  it('exits when the files stay .ready but it may push no more (nothing marks them done), instead of polling forever', async () => {
    if (backend.name !== 'filesystem') return; // the pusher's loop is the same for every backend
    const segs = fx.segments.slice(0, 4);
    const s = staged('idle', segs.map((n) => [n, fx.read(n)]));
    const first = await s.run(['archive-push', `pg_wal/${segs[0]}`], ['--push-readahead', '2']);
    expect(first.code, first.stderr).toBe(0);
    await waitFor(() => s.records().length === 2);
    // Pushes run by hand, or an archiver that stopped asking: four files stay .ready, two are
    // pushed and the cap allows no more. The pusher has nothing to do, and goes.
    await waitFor(() => /nothing to push for a while; pusher exits .*ready=4/.test(s.pusherLog()), 40_000);
    await waitFor(() => !existsSync(join(s.stateDir, 'pusher.lock')));
    // A later call is answered from its record as before.
    const again = await s.run(['archive-push', `pg_wal/${segs[1]}`], ['--push-readahead', '2']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/archived earlier by read-ahead/);
  });

  it('pushes ahead only while walship is called: files another archive_command archives are left alone', async () => {
    if (backend.name !== 'filesystem') return; // the pusher's loop is the same for every backend
    const segs = fx.segments.slice(0, 7);
    const s = staged('other', segs.map((n) => [n, fx.read(n)]));
    const first = await s.run(['archive-push', `pg_wal/${segs[0]}`], ['--push-readahead', '2']);
    expect(first.code, first.stderr).toBe(0);
    await waitFor(() => s.records().length === 2);
    // archive_command is another tool's from now on: it archives a file every 4 s, and walship is
    // not called again. Each file done lets the pusher push one more, for 10 s after the last call.
    for (const n of segs.slice(0, 5)) {
      await new Promise((r) => setTimeout(r, n === segs[0] ? 1000 : 4000));
      markDone(s.data, n);
    }
    await waitFor(() => /nothing to push for a while; pusher exits/.test(s.pusherLog()), 40_000);
    for (const n of segs.slice(0, 3)) expect(await archived(n), n).not.toBeNull();
    for (const n of segs.slice(5)) expect(await archived(n), n).toBeNull();
  });

  it('pushes a file changed since read-ahead as without it: identical bytes pass, different bytes are refused', async () => {
    const segs = fx.segments.slice(3, 6);
    const s = staged('b', segs.map((n) => [n, fx.read(n)]));
    const first = await s.run(['archive-push', `pg_wal/${segs[0]}`]);
    expect(first.code, first.stderr).toBe(0);
    await waitFor(() => s.records().length === 3);
    markDone(s.data, segs[0]!);

    // Rewritten with the same bytes (a new mtime): pushed again, found identical.
    writeFileSync(join(s.data, 'pg_wal', segs[1]!), fx.read(segs[1]!));
    const same = await s.run(['archive-push', `pg_wal/${segs[1]}`]);
    expect(same.code, same.stderr).toBe(0);
    expect(same.stderr).toMatch(/changed since read-ahead/);
    expect(same.stderr).toMatch(/already archived with identical content/);
    markDone(s.data, segs[1]!);

    // Different bytes under the archived name: refused, and the archived copy is untouched.
    const changed = Buffer.from(fx.read(segs[2]!));
    changed[100_000] ^= 0xff;
    writeFileSync(join(s.data, 'pg_wal', segs[2]!), changed);
    const refused = await s.run(['archive-push', `pg_wal/${segs[2]}`]);
    expect([3, 4], refused.stderr).toContain(refused.code);
    expect(refused.stderr).toMatch(/code=(INVALID_WAL|WAL_CONFLICT)/);
    expect((await archived(segs[2]!))!.equals(fx.read(segs[2]!))).toBe(true);
    expect(s.records()).not.toContain(segs[2]);
  });

  it('never fails the call for one segment because a background push failed; the call for that file reports it', async () => {
    const good = fx.segments[6]!;
    // A .ready "segment" after it that is not WAL at all.
    const n = parseInt(good.slice(16), 16);
    const bogus = good.slice(0, 16) + (n + 1).toString(16).toUpperCase().padStart(8, '0');
    const s = staged('c', [
      [good, fx.read(good)],
      [bogus, randomBytes(fx.read(good).length)],
    ]);
    const r = await s.run(['archive-push', `pg_wal/${good}`]);
    expect(r.code, r.stderr).toBe(0);
    await waitFor(() => existsSync(join(s.stateDir, `${bogus}.failed`)));
    expect(s.pusherLog()).toMatch(new RegExp(`background push failed; PostgreSQL's call will push this file itself file=${bogus}.*code=INVALID_WAL`));
    expect(s.records()).toEqual([good]);
    expect(await archived(bogus)).toBeNull();
    // PostgreSQL's own call for it pushes it itself and fails as it always did.
    markDone(s.data, good);
    const own = await s.run(['archive-push', `pg_wal/${bogus}`]);
    expect(own.stderr).toMatch(/the background push failed; pushing the file here/);
    expect(own.code).toBe(3);
  });

  it('answers from a record while the file is the one pushed, else pushes it again', async () => {
    const segs = fx.segments.slice(0, 5);
    const s = staged('e', segs.map((n) => [n, fx.read(n)]));
    const first = await s.run(['archive-push', `pg_wal/${segs[0]}`]);
    expect(first.code, first.stderr).toBe(0);
    await waitFor(() => s.records().length === 5);
    // Answered from its record, whatever the log format.
    const same = await s.run(['archive-push', `pg_wal/${segs[1]}`]);
    expect(same.code, same.stderr).toBe(0);
    expect(same.stderr).toMatch(new RegExp(`^walship INFO \\[archive-push\\] archived earlier by read-ahead file=${segs[1]} sha256=[0-9a-f]{16}\\n$`));
    const json = await s.run(['archive-push', `pg_wal/${segs[2]}`], ['--log-format', 'json']);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stderr)).toMatchObject({ level: 'info', cmd: 'archive-push', msg: 'archived earlier by read-ahead', file: segs[2] });
    // A file changed since it was pushed: node drops the record and pushes it again.
    writeFileSync(join(s.data, 'pg_wal', segs[3]!), fx.read(segs[3]!));
    const changed = await s.run(['archive-push', `pg_wal/${segs[3]}`]);
    expect(changed.code, changed.stderr).toBe(0);
    expect(changed.stderr).toMatch(/changed since read-ahead/);
    // A record that is not whole, or names another repository: node.
    const rec = join(s.stateDir, segs[4]!);
    writeFileSync(rec, readFileSync(rec, 'utf8').replace(/^repo=.*$/m, 'repo=file:///elsewhere'));
    const other = await s.run(['archive-push', `pg_wal/${segs[4]}`]);
    expect(other.code, other.stderr).toBe(0);
    expect(other.stderr).not.toMatch(/archived earlier by read-ahead/);
    // Not a segment, or asking for help: node.
    const help = await s.run(['archive-push', '--help']);
    expect(help.stdout + help.stderr).toMatch(/Usage/);
  });

  it('pushes a lone .ready file in the call itself, starting no pusher', async () => {
    const only = fx.segments[0]!;
    const s = staged('d', [[only, fx.read(only)]]);
    const r = await s.run(['archive-push', `pg_wal/${only}`]);
    expect(r.code, r.stderr).toBe(0);
    // (Archived by the first test already: the call itself finds it identical.)
    expect(r.stderr).toMatch(new RegExp(`already archived with identical content.*file=${only}|file=${only}.*already archived with identical content`));
    expect(r.stderr).not.toMatch(/background pusher/);
    expect(existsSync(join(s.stateDir, 'pusher.lock'))).toBe(false);
  });
});

describe.each(repoBackends())('push read-ahead under PostgreSQL ($name repository)', (backend: RepoBackend) => {
  let work: string;
  let repo: string;
  let env: Record<string, string>;
  let catalog: string;
  let primary: PgCluster | undefined;

  beforeAll(async () => {
    work = userTempDir('readahead-pg');
    ({ repo, env } = await backend.setup(work));
    catalog = join(work, 'catalog', 'walship.db');
  });
  afterAll(async () => {
    await primary?.destroy();
    await backend.teardown?.();
    await removeTempDir(work);
  });

  it('lets PostgreSQL catch up a backlog with every file archived once and no failures', async () => {
    const settings = `--repo '${repo}' --catalog '${catalog}'`;
    const command = walshipCommand(`archive-push %p ${settings} --push-readahead 5`);
    primary = await PgCluster.create({
      conf: { archive_mode: 'on', archive_command: confString(command), timezone: "'UTC'" },
      env,
    });
    await primary.start();
    await primary.sql('CREATE TABLE t (id int, v text)');
    await primary.waitArchived(await primary.switchWal());

    // Stop archiving, let a backlog build up, then resume.
    await primary.sql("ALTER SYSTEM SET archive_command = ''; SELECT pg_reload_conf();");
    let last = '';
    for (let i = 0; i < 16; i++) {
      await primary.sql(`INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g`);
      last = await primary.switchWal();
    }
    const statusDir = join(primary.dataDir, 'pg_wal', 'archive_status');
    const backlog = readdirSync(statusDir).filter((f) => /^[0-9A-F]{24}\.ready$/.test(f)).length;
    expect(backlog).toBeGreaterThanOrEqual(16);
    await primary.sql(`ALTER SYSTEM SET archive_command = ${confString(command)}; SELECT pg_reload_conf();`);
    await primary.waitArchived(last, 90_000);

    const [archivedCount, failed] = (await primary.sql('SELECT archived_count, failed_count FROM pg_stat_archiver'))[0]!;
    expect(Number(failed)).toBe(0);
    expect(readdirSync(statusDir).filter((f) => f.endsWith('.ready'))).toEqual([]);
    const done = readdirSync(statusDir).filter((f) => f.endsWith('.done')).map((f) => f.slice(0, -'.done'.length));
    const repoNames = await backend.listWalNames();
    for (const name of done) expect(repoNames).toContain(name);
    const db = new Database(catalog, { readonly: true });
    const rows = (db.prepare('SELECT count(*) AS n FROM wal_files').get() as { n: number }).n;
    db.close();
    expect(rows).toBe(repoNames.length);
    expect(Number(archivedCount)).toBeGreaterThanOrEqual(backlog);

    // Most of the backlog was answered from done-records (stored before the call, or while it
    // waited), and none is left over.
    const log = readFileSync(primary.logFile, 'utf8');
    const fromRecords = log.match(/archived (earlier by read-ahead|by the background pusher) /g)?.length ?? 0;
    expect(fromRecords, log).toBeGreaterThanOrEqual(Math.floor(backlog / 2));
    expect(log).not.toMatch(/background push failed/);
    // The pusher forgets every record once PostgreSQL has marked its file done.
    const stateDir = `${catalog}.readahead`;
    await waitFor(() => readdirSync(stateDir).filter((f) => /^[0-9A-F]{24}/.test(f)).length === 0);
  });
});
