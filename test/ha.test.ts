/**
 * High availability, with real clusters on unix sockets archiving into one filesystem repository
 * (catalogs in separate files standing for separate hosts):
 *
 * - a streaming standby whose repository goes away stays up while its primary restarts, its
 *   failed fetches answered with "not available" (fetch_on_error = auto in standby mode), and
 *   streams on; with streaming cut too it still stays up, and catches up from the archive once
 *   the repository is back; with fetch_on_error = abort the same standby shuts down;
 * - two servers with one system identifier (a copy of a stopped primary, started twice), each
 *   with a backlog, archiving at once: the repository holds one of the two histories exactly,
 *   every archived segment continues the one before it, the other server is refused and its
 *   `walship info` says so;
 * - archive_mode = always on a primary and its standby: a backup taken from the standby (it
 *   waits for the primary to archive its end, bounded, and says so), a promotion while the old
 *   primary still writes, the old primary rewound with pg_rewind and started as the new
 *   primary's standby, archiving too: no archive command fails anywhere, `ranges` shows the
 *   timeline switch, and the standby's backup restores to the end of the new timeline.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { PgCluster, clientBin, confString, pgUser, runAsUser, userTempDir, walshipCommand, writeUserFile } from './helpers/pg.js';
import { walship } from './helpers/walship.js';
import { caughtUp, startArchiving, startStandby, type Archiving } from './helpers/archiving.js';
import { fsBackend } from './helpers/backends.js';
import { readFrame } from '../src/archive/repo-reader.js';
import { unpackScan } from '../src/archive/envelope.js';
import { objectKeyFor } from '../src/archive/keys.js';
import { parseWalFileName } from '../src/wal/names.js';
import { discontinuity, type SegmentEnds } from '../src/wal/continuity.js';
import { endsOf } from '../src/archive/continuity.js';
import type { StorageDriver } from '../src/storage/driver.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const logOf = (c: PgCluster) => readFileSync(c.logFile, 'utf8');
const count = (text: string, re: RegExp) => text.match(new RegExp(re.source, 'g'))?.length ?? 0;

async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await cond()); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** A directory for one "host" (its catalog), owned by the cluster user. */
function hostDir(a: Archiving, name: string): string {
  const d = join(a.work, name);
  mkdirSync(d, { recursive: true });
  chownSync(d, pgUser().uid, pgUser().gid);
  return join(d, 'catalog.db');
}

const archiveCommand = (a: Archiving, catalog: string) => confString(walshipCommand(`archive-push %p --repo '${a.repo}' --catalog '${catalog}'`));

async function archiver(c: PgCluster): Promise<{ last: string; failed: number; lastFailed: string }> {
  const [last, failed, lastFailed] = (await c.sql("SELECT coalesce(last_archived_wal, ''), failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver"))[0]!;
  return { last: last!, failed: Number(failed), lastFailed: lastFailed! };
}

/** The archived segments of `timeline`, in order, with their content's SHA-256 and their ends. */
async function archivedSegments(storage: StorageDriver, names: string[], timeline: number): Promise<{ name: string; sha256: string; ends: SegmentEnds }[]> {
  const out = [];
  for (const name of names.filter((n) => parseWalFileName(n)?.kind === 'segment' && parseWalFileName(n)!.timeline === timeline).sort()) {
    const meta = (await readFrame(storage, objectKeyFor(parseWalFileName(name)!)))!;
    out.push({ name, sha256: meta.sha256, ends: endsOf(await unpackScan(meta.scan!, meta.startLsn!)) });
  }
  return out;
}

const sha256File = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('high availability', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('a standby whose repository goes away stays up and streams on, and catches up from the archive when it is back; with fetch_on_error = abort it would shut down', async () => {
    const a = await startArchiving(fsBackend(), 'ha-away');
    cleanups.push(() => a.cleanup());
    const p = a.primary;
    await p.sql('CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)');
    const b = await a.run(['backup'], a.pgEnv());
    expect(b.code, b.stderr).toBe(0);
    const s = await startStandby(a, hostDir(a, 'host-s'), { wal_retrieve_retry_interval: "'100ms'" });
    cleanups.push(() => s.destroy());

    // The repository goes away, and the primary restarts: while streaming is down the standby
    // asks the archive, every failure answered "not available"; it stays up and streams again.
    renameSync(a.repo, `${a.repo}.away`);
    await p.stop('fast');
    await until('failed fetches answered "not available"', () => count(logOf(s), /standby mode: exit 3/) >= 3);
    await p.start();
    await p.sql('INSERT INTO t SELECT generate_series(101, 200)');
    await caughtUp(s, await p.value('SELECT pg_current_wal_lsn()'));
    expect(await s.value('SELECT count(*) FROM t')).toBe('200');
    expect(await s.value('SELECT status FROM pg_stat_wal_receiver')).toBe('streaming');
    expect(logOf(s)).toMatch(/repository .* does not exist/);

    // Streaming cut as well: still up, asking the archive.
    await s.sql("ALTER SYSTEM SET primary_conninfo = ''");
    await s.sql('SELECT pg_reload_conf()');
    await p.sql('INSERT INTO t SELECT generate_series(201, 300)');
    const lsn = await p.value('SELECT pg_current_wal_lsn()');
    await p.switchWal(); // not archived: the primary's archive_command fails meanwhile
    const failures = count(logOf(s), /standby mode: exit 3/);
    await until('more failed fetches', () => count(logOf(s), /standby mode: exit 3/) >= failures + 3);
    expect(await s.value('SELECT pg_is_in_recovery()')).toBe('t');
    expect(logOf(s)).not.toMatch(/startup process \(PID \d+\) exited/);

    // The repository is back: the primary archives what waited, the standby replays it from there.
    renameSync(`${a.repo}.away`, a.repo);
    await p.waitArchived(await p.switchWal());
    await caughtUp(s, lsn);
    expect(await s.value('SELECT count(*) FROM t')).toBe('300');
    expect(await s.value('SELECT status FROM pg_stat_wal_receiver')).toBe(''); // not streaming: this came from the archive

    // The same standby with fetch_on_error = abort: the first failed fetch is fatal.
    const restoreCommand = await s.value('SHOW restore_command');
    await s.sql(`ALTER SYSTEM SET restore_command = ${confString(`${restoreCommand} --fetch-on-error abort`)}`);
    await s.sql('SELECT pg_reload_conf()');
    await sleep(500);
    renameSync(a.repo, `${a.repo}.away`);
    await until('the standby to shut down', () => /startup process \(PID \d+\) exited with exit code 1/.test(logOf(s)), 30_000);
    s.running = false;
    renameSync(`${a.repo}.away`, a.repo);
  });

  it('two servers with one system identifier archiving at once: the repository holds one history exactly, and the other server is refused and says so', async () => {
    const backend = fsBackend();
    const a = await startArchiving(backend, 'ha-clone', { wal_keep_size: "'1GB'" });
    cleanups.push(() => a.cleanup());
    const p = a.primary;
    await p.sql('CREATE TABLE t (who text, n int)');
    await p.waitArchived(await p.switchWal());
    // A copy of the stopped primary, started beside it: both go on from the same checkpoint.
    await p.stop('fast');
    const cloneBase = userTempDir('ha-clone-b');
    execFileSync('cp', ['-a', p.dataDir, join(cloneBase, 'data')]);
    const blocked = { archive_command: "'/bin/false'" };
    p.setConf(blocked);
    const q = await PgCluster.create({ baseDir: cloneBase, noInit: true, conf: blocked, env: a.env });
    cleanups.push(() => q.destroy());
    await p.start();
    await q.start();
    expect(await q.systemIdentifier()).toBe(await p.systemIdentifier());
    // Each writes a backlog of its own history on timeline 1, archiving blocked (of different
    // sizes: two histories whose records lie at the same positions link up as one, for walship's
    // check as for recovery's).
    const last = new Map<PgCluster, string>();
    for (const [c, who, rows] of [[p, 'A', 20000], [q, 'B', 17000]] as const) {
      for (let i = 0; i < 6; i++) {
        await c.sql(`INSERT INTO t SELECT '${who}', generate_series(1, ${rows})`);
        last.set(c, await c.switchWal());
      }
    }
    expect(last.get(q)).toBe(last.get(p)); // the same names

    // Archiving into one repository, each host with its catalog, both at the same moment: the
    // background pushers (what archive-push starts for a backlog) race over the same names, with
    // several segments in flight each; then PostgreSQL's archivers go through their backlogs.
    const catalogs = new Map<PgCluster, string>([
      [p, a.catalog],
      [q, hostDir(a, 'host-b')],
    ]);
    await Promise.all([p.stop('fast'), q.stop('fast')]);
    const pushers = await Promise.all([p, q].map((c) => walship(['archive-push-ahead', realpathSync(join(c.dataDir, 'pg_wal')), '--repo', a.repo, '--catalog', catalogs.get(c)!], { env: a.env, asUser: true })));
    for (const r of pushers) expect(r.code, r.stderr).toBe(0);
    for (const c of [p, q]) {
      c.setConf({ archive_command: archiveCommand(a, catalogs.get(c)!) });
      await c.start();
    }
    let winner: PgCluster | undefined;
    await until('one server to archive its backlog and the other to be refused', async () => {
      const [sp, sq] = await Promise.all([archiver(p), archiver(q)]);
      if (sp.last === last.get(p) && sq.failed >= 1) winner = p;
      else if (sq.last === last.get(q) && sp.failed >= 1) winner = q;
      return winner !== undefined;
    });
    const loser = winner === p ? q : p;
    const refused = (await archiver(loser)).lastFailed;
    expect(refused).not.toBe('');
    await sleep(1000);
    expect((await archiver(loser)).last < refused).toBe(true); // it never got past the refused segment

    // The repository: the winner's segments exactly, from the first one the two differ in on.
    const segments = await archivedSegments(backend.driver(), await backend.listWalNames(), 1);
    const fork = segments.findIndex((s) => s.name === refused);
    expect(fork).toBeGreaterThan(0);
    for (const s of segments.slice(fork)) expect(s.sha256, s.name).toBe(sha256File(join(winner!.dataDir, 'pg_wal', s.name)));
    expect(segments.at(-1)!.name).toBe(last.get(winner!));
    for (let i = 1; i < segments.length; i++) expect(discontinuity(segments[i - 1]!.ends, segments[i]!.ends), segments[i]!.name).toBeNull();

    // The refused server's host says what is wrong, in JSON and in text.
    const info = await walship(['info', '--json', '--repo', a.repo, '--catalog', catalogs.get(loser)!], { env: a.env, asUser: true });
    expect(info.code, info.stderr).toBe(0);
    const refusals = (JSON.parse(info.stdout) as { refusals: { name: string; code: string; count: number; message: string }[] }).refusals;
    expect(refusals.map((r) => r.name)).toContain(refused);
    const r = refusals.find((x) => x.name === refused)!;
    expect(['WAL_CONFLICT', 'HISTORY_DIVERGED']).toContain(r.code);
    expect(r.count).toBeGreaterThanOrEqual(1);
    const text = await walship(['info', '--repo', a.repo, '--catalog', catalogs.get(loser)!], { env: a.env, asUser: true });
    expect(text.stdout).toMatch(new RegExp(`REFUSED\\s+${refused}: \\d+ time\\(s\\) since`));
    expect(logOf(loser)).toMatch(/already archived with different content|diverged history on timeline 1/);
    // A segment of the refused server's past everything archived: its first record does not
    // point back to the last record of the archived history.
    await loser.sql(`INSERT INTO t SELECT 'more', generate_series(1, 1000)`);
    const beyond = await loser.switchWal();
    const manual = await walship(['archive-push', join(loser.dataDir, 'pg_wal', beyond), '--repo', a.repo, '--catalog', catalogs.get(loser)!, '--push-readahead', '0'], { env: a.env, asUser: true });
    expect(manual.code, manual.stderr).toBe(4);
    expect(manual.stderr).toMatch(new RegExp(`diverged history on timeline 1 at LSN [0-9A-F]+/[0-9A-F]+: ${beyond} and the archived ${last.get(loser)} are not one history .*another server with this system identifier is archiving into this repository`, 'i'));
    expect(manual.stderr).toMatch(/code=HISTORY_DIVERGED/);
    // The winner's host shows no refusal, and goes on archiving once the other server is stopped.
    const winnerInfo = JSON.parse((await walship(['info', '--json', '--repo', a.repo, '--catalog', catalogs.get(winner!)!], { env: a.env, asUser: true })).stdout) as { refusals: unknown[] };
    expect(winnerInfo.refusals).toEqual([]);
    await loser.stop('immediate');
    await winner!.sql(`INSERT INTO t SELECT 'after', 1`);
    await winner!.waitArchived(await winner!.switchWal());
  });

  it('archive_mode = always: a backup from the standby, a promotion, the old primary rewound as the new standby; no archive failure, one history per timeline, and the backup restores', async () => {
    const backend = fsBackend();
    const a = await startArchiving(backend, 'ha-always', { archive_mode: 'always', wal_log_hints: 'on', wal_keep_size: "'256MB'" });
    cleanups.push(() => a.cleanup());
    const p = a.primary;
    await p.sql("CREATE TABLE t (phase text, n int); INSERT INTO t SELECT 'base', generate_series(1, 1000)");
    const b0 = await a.run(['backup'], a.pgEnv());
    expect(b0.code, b0.stderr).toBe(0);
    const catS = hostDir(a, 'host-s');
    const s = await startStandby(a, catS, { archive_mode: 'always' });
    cleanups.push(() => s.destroy());
    const onS = (args: string[], env: Record<string, string> = {}) => walship([...args, '--repo', a.repo, '--catalog', catS], { env: { ...a.env, ...env }, asUser: true });
    const sEnv = { WALSHIP_PG_HOST: s.socketDir, WALSHIP_PG_PORT: String(s.port), WALSHIP_PG_USER: 'postgres' };

    // Both archive the same segments of timeline 1.
    for (let i = 0; i < 3; i++) {
      await p.sql(`INSERT INTO t SELECT 'streamed', generate_series(1, 1000)`);
      const seg = await p.switchWal();
      await p.waitArchived(seg);
      await s.waitArchived(seg);
    }
    expect(logOf(s)).toMatch(/already archived with identical content/);

    // A backup from the standby: its end is archived once the primary switches the segment. Not
    // switched, the wait is bounded and says what to do.
    await p.sql(`INSERT INTO t SELECT 'before the backup', generate_series(1, 10)`);
    await caughtUp(s, await p.value('SELECT pg_current_wal_lsn()'));
    const timedOut = await onS(['backup', '--archive-timeout', '3'], sEnv);
    expect(timedOut.code).toBe(6);
    expect(timedOut.stderr).toMatch(/taken from a standby, and the primary archives that segment once it fills or switches it: run SELECT pg_switch_wal\(\) on the primary/);
    let finished = false;
    const backup = onS(['backup', '--json'], sEnv).finally(() => (finished = true));
    while (!finished) {
      await sleep(700);
      await p.sql(`INSERT INTO t SELECT 'during the backup', 1`);
      await p.switchWal();
    }
    const br = await backup;
    expect(br.code, br.stderr).toBe(0);
    const standbyBackup = (JSON.parse(br.stdout) as { id: string }).id;

    // Failover: the standby is promoted while the old primary still writes (and archives) on
    // timeline 1 for a moment; then the old primary is stopped and rewound.
    await p.sql(`INSERT INTO t SELECT 'before the failover', generate_series(1, 100)`);
    await caughtUp(s, await p.value('SELECT pg_current_wal_lsn()'));
    await runAsUser(join(s.bin, 'pg_ctl'), ['-D', s.dataDir, '-w', 'promote'], { cwd: s.baseDir });
    await s.waitPromoted();
    await p.sql(`INSERT INTO t SELECT 'lost on the old primary', generate_series(1, 100)`);
    await p.waitArchived(await p.switchWal());
    await s.sql(`INSERT INTO t SELECT 'on timeline 2', generate_series(1, 500)`);
    await s.waitArchived(await s.switchWal());
    await p.stop('fast');
    await s.sql('CHECKPOINT'); // pg_rewind reads the new timeline from the source's control file
    await runAsUser(clientBin('pg_rewind'), ['--target-pgdata', p.dataDir, '--source-server', `host=${s.socketDir} port=${s.port} user=postgres dbname=postgres`], { cwd: p.baseDir });
    // pg_rewind copied the new primary's configuration: the old primary gets its own back, as a standby.
    const catP = a.catalog;
    writeUserFile(join(p.dataDir, 'postgresql.auto.conf'), `restore_command = ${confString(walshipCommand(`archive-fetch %f %p --repo '${a.repo}' --catalog '${catP}'`))}\n`);
    p.setConf({
      port: p.port,
      unix_socket_directories: `'${p.socketDir}'`,
      archive_mode: 'always',
      archive_command: archiveCommand(a, catP),
      primary_conninfo: confString(`host=${s.socketDir} port=${s.port} user=postgres`),
    });
    writeFileSync(join(p.dataDir, 'standby.signal'), '');
    chownSync(join(p.dataDir, 'standby.signal'), pgUser().uid, pgUser().gid);
    await p.start();
    await s.sql(`INSERT INTO t SELECT 'streamed to the old primary', generate_series(1, 100)`);
    await caughtUp(p, await s.value('SELECT pg_current_wal_lsn()'));
    expect(await p.value("SELECT count(*) FROM t WHERE phase = 'lost on the old primary'")).toBe('0');
    const seg = await s.switchWal();
    await s.waitArchived(seg);
    await p.waitArchived(seg);

    // No archive command failed anywhere, on either server, in any role.
    for (const c of [p, s]) {
      expect(count(logOf(c), /archive command failed/), c.logFile).toBe(0);
      expect((await archiver(c)).failed).toBe(0);
    }
    const names = await backend.listWalNames();
    expect(names).toContain('00000002.history');
    expect(names.some((n) => /^00000001[0-9A-F]{16}\.partial$/.test(n))).toBe(true);
    for (const tl of [1, 2]) {
      const segs = await archivedSegments(backend.driver(), names, tl);
      for (let i = 1; i < segs.length; i++) {
        const consecutive = parseInt(segs[i]!.name.slice(8), 16) - parseInt(segs[i - 1]!.name.slice(8), 16) === 1;
        if (consecutive) expect(discontinuity(segs[i - 1]!.ends, segs[i]!.ends), segs[i]!.name).toBeNull();
      }
    }

    // ranges (from a host with no catalog) shows both timelines; the standby's backup restores to the end of timeline 2.
    const reader = hostDir(a, 'host-r');
    const ranges = await walship(['ranges', '--json', '--repo', a.repo, '--catalog', reader], { env: a.env, asUser: true });
    expect(ranges.code, ranges.stderr).toBe(0);
    const tls = (JSON.parse(ranges.stdout) as { timelines: { timeline: number; windows: unknown[] }[] }).timelines;
    expect(tls.map((t) => t.timeline)).toEqual([1, 2]);
    expect(tls.every((t) => t.windows.length > 0)).toBe(true);
    const base = userTempDir('ha-restored');
    const restored = await walship(['restore', '--pgdata', join(base, 'data'), '--backup', standbyBackup, '--target', 'latest', '--repo', a.repo, '--catalog', reader], { env: a.env, asUser: true });
    expect(restored.code, restored.stderr).toBe(0);
    const c = await PgCluster.create({ baseDir: base, noInit: true, conf: { archive_mode: 'off' }, env: a.env });
    cleanups.push(() => c.destroy());
    await c.start();
    await c.waitPromoted();
    expect(await c.sql('SELECT phase, count(*) FROM t GROUP BY phase ORDER BY phase')).toEqual(await s.sql('SELECT phase, count(*) FROM t GROUP BY phase ORDER BY phase'));
  });
});
