/**
 * The repository is the source of truth; a catalog is a cache of it. Per backend, with real
 * PostgreSQL and catalogs in separate files standing for separate hosts:
 *
 * - the disaster: primary A archives, takes a walship backup, commits, makes a restore point,
 *   drops a table. On "host C", with the same repository and no catalog, `ranges`, `backups`,
 *   `info` and `plan` answer exactly as A's catalog does, and `restore` to the restore point and
 *   to a time brings back exactly the data of that moment;
 * - a catalog rebuilt from the repository alone (`catalog rebuild`) answers the same again;
 * - the failover: standby B is promoted (timeline 2) and archives into the same repository with
 *   its own catalog; `ranges --json` on A, B and C is identical and shows both timelines, and
 *   `plan` from C reaches targets on either timeline;
 * - a catalog that cannot reach the repository answers from what it has and says since when,
 *   and one that knows nothing refuses to claim that nothing is archived.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PgCluster, pgUser, userTempDir } from './helpers/pg.js';
import { walship, type RunResult } from './helpers/walship.js';
import { caughtUp, startArchiving, startStandby, type Archiving } from './helpers/archiving.js';
import { repoBackends, type RepoBackend } from './helpers/backends.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A JSON answer with what differs between runs by nature taken out: the time asked, and a catalog's own path. */
function normalized(r: RunResult): unknown {
  expect(r.code, r.stderr).toBe(0);
  const doc = JSON.parse(r.stdout) as Record<string, unknown>;
  delete doc.now;
  delete doc.catalog;
  delete doc.stale; // --no-sync on the catalog the answer is compared with
  const lag = doc.archiveLag as { seconds?: number } | null | undefined;
  if (lag) delete lag.seconds;
  return doc;
}

describe.each(repoBackends())('the repository as the source of truth ($name repository)', (backend: RepoBackend) => {
  let a: Archiving;
  let hostC: string;
  const marks: Record<string, string> = {};
  let counts: Record<string, string> = {};
  const started: PgCluster[] = [];

  /** walship as the cluster's user, against this repository with `catalog` (a host's). */
  const on = (catalog: string, args: string[], extraEnv: Record<string, string> = {}) => walship([...args, '--repo', a.repo, '--catalog', catalog], { env: { ...a.env, ...extraEnv }, asUser: true });
  const hostDir = (name: string) => {
    const d = join(a.work, name);
    mkdirSync(d, { recursive: true });
    chownSync(d, pgUser().uid, pgUser().gid);
    return d;
  };

  beforeAll(async () => {
    a = await startArchiving(backend, 'truth');
    const p = a.primary;
    await p.sql('CREATE TABLE keep (id int, v text); CREATE TABLE doomed (id int)');
    await p.sql("INSERT INTO keep SELECT g, 'before backup' FROM generate_series(1, 1000) g; INSERT INTO doomed SELECT generate_series(1, 500)");
    const b = await a.run(['backup', '--json'], a.pgEnv());
    expect(b.code, b.stderr).toBe(0);
    await p.sql("INSERT INTO keep SELECT g, 'after backup' FROM generate_series(1001, 1100) g");
    await sleep(1100);
    marks.time = await p.value("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    await sleep(1100);
    await p.sql("INSERT INTO keep SELECT g, 'after the time' FROM generate_series(1101, 1200) g");
    await p.sql("SELECT pg_create_restore_point('before_drop')");
    counts = { time: '1100', rp: '1200' };
    await p.sql('DROP TABLE doomed');
    await p.sql("INSERT INTO keep SELECT g, 'after the drop' FROM generate_series(1201, 1300) g");
    await p.waitArchived(await p.switchWal());
    hostC = join(hostDir('host-c'), 'catalog.db');
  });

  afterAll(async () => {
    for (const c of started) await c.destroy().catch(() => undefined);
    await a?.cleanup();
  });

  it('on a new host with no catalog, ranges, backups, info and plan answer as the primary\'s catalog does', async () => {
    for (const args of [['ranges', '--json'], ['backups', '--json'], ['info', '--json'], ['plan', '--target-name', 'before_drop', '--json'], ['plan', '--target-time', marks.time!, '--json']]) {
      // The primary's catalog as its pushes and its backup made it, not synced.
      const original = normalized(await on(a.catalog, [...args, '--no-sync']));
      const fresh = normalized(await on(hostC, args));
      expect(fresh, args.join(' ')).toEqual(original);
    }
    const ranges = JSON.parse((await on(hostC, ['ranges', '--json'])).stdout) as { timelines: { windows: unknown[] }[] };
    expect(ranges.timelines[0]!.windows).toHaveLength(1);
    const text = await on(hostC, ['info']);
    expect(text.stdout).not.toMatch(/archived\s+0 files|last push\s+never/);
  });

  it('a catalog rebuilt from the repository alone answers the same', async () => {
    const rebuilt = join(hostDir('host-d'), 'catalog.db');
    const r = await on(rebuilt, ['catalog', 'rebuild']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rebuilt from the repository: \d+ file\(s\) and 1 backup\(s\) read/);
    // Rebuilding over an existing catalog replaces its content the same way.
    const again = await on(hostC, ['catalog', 'rebuild', '--json']);
    expect(again.code, again.stderr).toBe(0);
    for (const args of [['ranges', '--json'], ['backups', '--json'], ['info', '--json'], ['plan', '--target', 'latest', '--json']]) {
      const primary = normalized(await on(a.catalog, args));
      expect(normalized(await on(rebuilt, args, {})), args.join(' ')).toEqual(primary);
      expect(normalized(await on(hostC, args)), args.join(' ')).toEqual(primary);
    }
  });

  it('restores on the new host to the restore point and to a time, the data exact', async () => {
    for (const [target, want] of [
      [['--target-name', 'before_drop'], counts.rp],
      [['--target-time', marks.time!], counts.time],
    ] as const) {
      const base = userTempDir('truth-restored');
      const r = await on(hostC, ['restore', '--pgdata', join(base, 'data'), ...target]);
      expect(r.code, r.stderr).toBe(0);
      const c = await PgCluster.create({ baseDir: base, noInit: true, conf: { archive_mode: 'off' }, env: a.env });
      started.push(c);
      await c.start();
      await c.waitPromoted();
      expect(await c.value('SELECT count(*) FROM keep')).toBe(want);
      expect(await c.value('SELECT count(*) FROM doomed')).toBe('500'); // both targets are before the drop
      await c.destroy();
    }
  });

  it('after a failover, the primary\'s, the promoted standby\'s and a reader\'s catalogs show the same two timelines', async () => {
    const p = a.primary;
    // Standby B, restored from the backup, streams from A, is promoted, and archives timeline 2
    // into the same repository with a catalog of its own.
    const hostB = join(hostDir('host-b'), 'catalog.db');
    const b = await startStandby(a, hostB);
    started.push(b);
    await p.sql("INSERT INTO keep SELECT g, 'streamed' FROM generate_series(1301, 1400) g");
    await caughtUp(b, await p.value('SELECT pg_current_wal_lsn()'));
    await b.value('SELECT pg_promote()');
    await b.waitPromoted();
    await b.sql("INSERT INTO keep SELECT g, 'on timeline 2' FROM generate_series(2001, 2100) g");
    await b.sql("SELECT pg_create_restore_point('on_two')");
    await b.sql("INSERT INTO keep SELECT g, 'after on_two' FROM generate_series(2101, 2200) g");
    await b.waitArchived(await b.switchWal());
    // The old primary goes on on timeline 1 for a while (it was not fenced).
    await p.sql("INSERT INTO keep SELECT g, 'old primary' FROM generate_series(3001, 3100) g");
    await p.waitArchived(await p.switchWal());

    const views = await Promise.all([a.catalog, hostB, hostC].map(async (c) => normalized(await on(c, ['ranges', '--json']))));
    expect(views[1]).toEqual(views[0]);
    expect(views[2]).toEqual(views[0]);
    const tls = (views[0] as { timelines: { timeline: number; windows: unknown[] }[] }).timelines;
    expect(tls.map((t) => t.timeline)).toEqual([1, 2]);
    expect(tls.every((t) => t.windows.length > 0)).toBe(true);
    // From the reader, targets on either timeline.
    const on2 = await on(hostC, ['plan', '--target-name', 'on_two', '--json']);
    expect(on2.code, on2.stderr).toBe(0);
    expect(JSON.parse(on2.stdout).timeline).toBe(2);
    const on1 = await on(hostC, ['plan', '--target-name', 'before_drop', '--target-timeline', '1', '--json']);
    expect(on1.code, on1.stderr).toBe(0);
    expect(JSON.parse(on1.stdout).timeline).toBe(1);
    await b.destroy();
  });

  it('without the repository, answers from the catalog and says since when; a catalog that knows nothing refuses', async () => {
    // The repository out of reach: S3 at a port where nothing listens, a filesystem one unreadable.
    const away = { WALSHIP_S3_ENDPOINT: 'http://127.0.0.1:9', WALSHIP_S3_MAX_RETRIES: '0', WALSHIP_S3_REQUEST_TIMEOUT: '500' };
    const repoArgs = async (catalog: string, args: string[]) => {
      if (backend.name === 's3') return on(catalog, args, away);
      chmodSync(a.repo, 0);
      try {
        return await on(catalog, args);
      } finally {
        chmodSync(a.repo, 0o700);
      }
    };
    const stale = await repoArgs(hostC, ['ranges', '--json']);
    expect(stale.code, stale.stderr).toBe(0);
    const doc = JSON.parse(stale.stdout) as { stale?: { lastSyncedAt: string; reason: string }; timelines: unknown[] };
    expect(doc.stale?.lastSyncedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(doc.stale?.reason).toMatch(backend.name === 's3' ? /cannot reach/ : /EACCES/);
    expect(doc.timelines.length).toBeGreaterThan(0);
    expect(stale.stderr).toMatch(/answering from the catalog as it is/);
    const text = await repoArgs(hostC, ['ranges']);
    expect(text.stdout).toMatch(/^note: this answer is from the catalog as of its last sync with the repository \(\d{4}-/);
    const empty = join(hostDir('host-e'), 'catalog.db');
    const refused = await repoArgs(empty, ['ranges']);
    expect(refused.code).toBe(6);
    expect(refused.stderr).toMatch(/knows nothing yet, and the repository cannot be read to fill it/);
    expect(refused.stdout).not.toMatch(/nothing is archived/);
    // --no-sync says so too.
    const offline = await on(hostC, ['ranges', '--json', '--no-sync']);
    expect(JSON.parse(offline.stdout).stale.reason).toMatch(/--no-sync/);
  });
});
