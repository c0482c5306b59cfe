/**
 * walship expire, end to end, per repository backend. A real primary takes backups B1 and B2 on
 * timeline 1; a standby restored from B2 is promoted (timeline 2, archiving with a catalog of its
 * own, as another host) and takes B3. Then:
 * - `--dry-run` lists what a policy lets go and removes nothing;
 * - by count: B1 and the WAL before B2 go; every host's `ranges` shows exactly the windows the
 *   dry run predicted; a new host restores to the oldest moment promised, the data exact, and
 *   `plan` refuses a moment just before it (and one that was reachable before the expire);
 * - by window, while the new primary pushes: no push fails, none of its segments goes, the
 *   window reaches to the end of the archive; the oldest promised moment restores exactly;
 * - a killed expire leaves the kept windows intact, other catalogs converge, the next finishes;
 * - the repository lock: a live one refuses a second expire (exit 11), a stale one is taken over.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { PgCluster, WALSHIP_COMMAND, pgUser, userTempDir } from './helpers/pg.js';
import { walship, type RunResult } from './helpers/walship.js';
import { caughtUp, startArchiving, startStandby, type Archiving } from './helpers/archiving.js';
import { repoBackends, type RepoBackend } from './helpers/backends.js';
import { startTcpProxy } from './helpers/s3rver.js';
import { parseWalFileName, segNoFromLogSeg } from '../src/wal/names.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Window {
  backup: { name: string };
  earliest: { lsn: string; time: string | null };
  timeTargets: { from: string; before: string } | null;
  end: string;
}
interface Ranges {
  timelines: { timeline: number; windows: Window[] }[];
}
const windowsOf = (r: Ranges) => r.timelines.filter((t) => t.windows.length > 0).map((t) => ({ timeline: t.timeline, windows: t.windows }));

function json<T>(r: RunResult): T {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

describe.each(repoBackends())('walship expire ($name repository)', (backend: RepoBackend) => {
  let a: Archiving;
  let b: PgCluster;
  let hostB: string;
  const ids: Record<string, string> = {};
  let between = '';
  const started: PgCluster[] = [];

  const on = (catalog: string, args: string[], extraEnv: Record<string, string> = {}) =>
    walship([...args, '--repo', a.repo, '--catalog', catalog], { env: { ...a.env, ...extraEnv }, asUser: true });
  const newHost = (name: string) => {
    const d = join(a.work, name);
    mkdirSync(d, { recursive: true });
    chownSync(d, pgUser().uid, pgUser().gid);
    return join(d, 'catalog.db');
  };
  const keys = async () => {
    const out: string[] = [];
    for await (const o of backend.driver().list('')) out.push(o.key);
    return out;
  };
  const utcNow = (c: PgCluster) => c.value("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
  const backupOn = async (c: PgCluster, catalog: string) => {
    const r = await on(catalog, ['backup', '--json'], { WALSHIP_PG_HOST: c.socketDir, WALSHIP_PG_PORT: String(c.port), WALSHIP_PG_USER: 'postgres' });
    return json<{ id: string }>(r).id;
  };
  const marks = async (c: PgCluster) => (await c.sql('SELECT id FROM marks ORDER BY id')).map((r) => Number(r[0]));

  /** Restores on a new host to `time`, starts it and returns the marks it holds. */
  async function marksAt(time: string): Promise<number[]> {
    const base = userTempDir('expire-restored');
    const r = await on(newHost(`restore-${Math.random().toString(16).slice(2)}`), ['restore', '--pgdata', join(base, 'data'), '--target-time', time]);
    expect(r.code, r.stderr).toBe(0);
    const c = await PgCluster.create({ baseDir: base, noInit: true, conf: { archive_mode: 'off' }, env: a.env });
    started.push(c);
    await c.start();
    await c.waitPromoted();
    const m = await marks(c);
    await c.destroy();
    return m;
  }

  const minus = (iso: string, ms: number) => new Date(Date.parse(iso) - ms).toISOString();

  beforeAll(async () => {
    a = await startArchiving(backend, 'expire');
    const p = a.primary;
    await p.sql('CREATE TABLE marks (id int PRIMARY KEY, note text)');
    ids.b1 = await backupOn(p, a.catalog);
    await p.sql("INSERT INTO marks VALUES (1, 'after B1')");
    await sleep(1100);
    between = await utcNow(p);
    await sleep(1100);
    await p.sql("INSERT INTO marks VALUES (2, 'before B2')");
    ids.b2 = await backupOn(p, a.catalog);
    await p.sql("INSERT INTO marks VALUES (3, 'after B2')");
    // Failover: B, restored from B2 on another host, streams, is promoted and archives timeline 2.
    hostB = newHost('host-b');
    b = await startStandby(a, hostB);
    started.push(b);
    await caughtUp(b, await p.value('SELECT pg_current_wal_lsn()'));
    await p.stop();
    await b.value('SELECT pg_promote()');
    await b.waitPromoted();
    await b.sql("INSERT INTO marks VALUES (4, 'on timeline 2')");
    ids.b3 = await backupOn(b, hostB);
    await sleep(1100);
    await b.sql("INSERT INTO marks VALUES (5, 'after B3')");
    await b.waitArchived(await b.switchWal());
  });

  afterAll(async () => {
    for (const c of started) await c.destroy().catch(() => undefined);
    await a?.cleanup();
  });

  it('--dry-run lists what goes and the windows that remain, and removes nothing', async () => {
    const before = await keys();
    const r = await on(a.catalog, ['expire', '--dry-run', '--retain-full', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/expire --dry-run \(nothing is removed\): retain_full = 2/);
    expect(r.stdout).toMatch(new RegExp(`remove +backup ${ids.b1}`));
    expect(r.stdout).toMatch(/windows that remain after it/);
    const doc = json<{ plan: { kept: { name: string }[]; removed: { name: string }[]; walBelowSeg: number } }>(
      await on(a.catalog, ['expire', '--dry-run', '--json', '--retain-full', '2']),
    );
    expect(doc.plan.kept.map((k) => k.name)).toEqual([ids.b3, ids.b2]);
    expect(doc.plan.removed.map((k) => k.name)).toEqual([ids.b1]);
    expect(await keys()).toEqual(before);
    // Without a policy: a one-line refusal.
    const none = await on(a.catalog, ['expire', '--dry-run']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no retention policy: set retain_full/);
    // Before any expire, a moment between B1 and B2 is reachable.
    expect((await on(a.catalog, ['plan', '--target-time', between])).code).toBe(0);
  });

  it('by count: B1 and the WAL before B2 go; every host sees the predicted windows; the oldest promised moment restores exactly', async () => {
    const dry = json<{ plan: { after: Ranges; walBelowSeg: number } }>(await on(a.catalog, ['expire', '--dry-run', '--json', '--retain-full', '2']));
    const r = json<{ removed: { objects: number; record: string } }>(await on(a.catalog, ['expire', '--json', '--retain-full', '2']));
    expect(r.removed.objects).toBeGreaterThan(3);
    const left = await keys();
    expect(left.some((k) => k.startsWith(`backups/${ids.b1}/`))).toBe(false);
    expect(left.some((k) => k.startsWith(`backups/${ids.b2}/`))).toBe(true);
    expect(left).toContain(r.removed.record);
    expect(left).toContain('wal/00000002.history.zst');
    const walSegs = left.map((k) => parseWalFileName(k.slice(k.lastIndexOf('/') + 1).replace(/\.zst$/, ''))).filter((f) => f && f.kind !== 'history');
    expect(walSegs.every((f) => segNoFromLogSeg(f!.logSeg!, 16 * 1024 * 1024) >= dry.plan.walBelowSeg)).toBe(true);
    expect(left.some((k) => k.startsWith('locks/'))).toBe(false);

    // The expiring host, the other host (a sync away) and a new host all see the predicted windows.
    const predicted = windowsOf(dry.plan.after);
    for (const catalog of [a.catalog, hostB, newHost('host-c')]) {
      expect(windowsOf(json<Ranges>(await on(catalog, ['ranges', '--json']))), catalog).toEqual(predicted);
      expect(json<{ name: string }[]>(await on(catalog, ['backups', '--json'])).some((x) => x.name === ids.b1)).toBe(false);
    }
    // The oldest moment promised now: B2's consistency, on timeline 2's lineage.
    const tl2 = predicted.find((t) => t.timeline === 2)!.windows[0]!;
    expect(tl2.backup.name).toBe(ids.b2);
    const from = tl2.timeTargets!.from;
    expect((await on(hostB, ['plan', '--target-time', from])).code).toBe(0);
    const outside = await on(hostB, ['plan', '--target-time', minus(from, 1)]);
    expect(outside.code, outside.stdout).toBe(9);
    expect((await on(hostB, ['plan', '--target-time', between])).code).toBe(9);
    expect(await marksAt(from)).toEqual([1, 2]);
  });

  it('by window, while the primary pushes: no push fails or goes, the window reaches the end of the archive', async () => {
    await sleep(2500); // B3 is consistent more than 2 s ago
    let pushing = true;
    let n = 100;
    const load = (async () => {
      while (pushing) {
        await b.sql(`INSERT INTO marks VALUES (${n++}, 'during expire')`);
        await b.switchWal();
        await sleep(100);
      }
    })();
    const expireAt = new Date().toISOString();
    const r = json<{ plan: { removed: { name: string }[]; kept: { name: string }[] } }>(await on(hostB, ['expire', '--json', '--retain-window', '2s']));
    pushing = false;
    await load;
    expect(r.plan.kept.map((k) => k.name)).toEqual([ids.b3]);
    expect(r.plan.removed.map((k) => k.name)).toEqual([ids.b2]);
    await b.waitArchived(await b.switchWal());
    expect(await b.value('SELECT failed_count FROM pg_stat_archiver')).toBe('0');
    // Every segment from B3's start to the last archived is there.
    const last = await b.value('SELECT last_archived_wal FROM pg_stat_archiver');
    const names = new Set(await backend.listWalNames());
    const ranges = json<Ranges>(await on(hostB, ['ranges', '--json']));
    const w = windowsOf(ranges).find((t) => t.timeline === 2)!.windows;
    expect(w).toHaveLength(1);
    expect(w[0]!.backup.name).toBe(ids.b3);
    expect(w[0]!.end).toBe('end-of-archive');
    expect(names.has(last)).toBe(true);
    const per = 0x100000000 / (16 * 1024 * 1024);
    const firstSeg = Math.floor(Number(BigInt(`0x${w[0]!.earliest.lsn.replace('/', '').padStart(16, '0')}`) >> 0n) / (16 * 1024 * 1024));
    for (let s = firstSeg; s <= segNoFromLogSeg(last.slice(8), 16 * 1024 * 1024); s++) {
      const name = `00000002${Math.floor(s / per).toString(16).toUpperCase().padStart(8, '0')}${(s % per).toString(16).toUpperCase().padStart(8, '0')}`;
      expect(names.has(name), name).toBe(true);
    }
    // The window's promise: any moment since now - 2 s; not a moment before B3's consistency.
    expect((await on(hostB, ['plan', '--target-time', minus(expireAt, 2000)])).code).toBe(0);
    const from = w[0]!.timeTargets!.from;
    expect((await on(hostB, ['plan', '--target-time', minus(from, 1)])).code).toBe(9);
    expect(await marksAt(from)).toEqual([1, 2, 3, 4]);
  });

  it('a killed expire leaves the kept windows intact; other catalogs converge; the next expire finishes', async () => {
    ids.b4 = await backupOn(b, hostB);
    await b.sql("INSERT INTO marks VALUES (6, 'after B4')");
    await b.waitArchived(await b.switchWal());
    const dry = json<{ plan: { after: Ranges; walBelowSeg: number } }>(await on(hostB, ['expire', '--dry-run', '--json', '--retain-full', '1']));
    const records = async () => {
      let n = 0;
      for await (const _ of backend.driver().list('expire/')) n++;
      return n;
    };
    const before = await records();
    // The removals must take long enough to be killed amid: on a filesystem, 20,000 leftovers
    // below the cut (what an interrupted expire could leave; expire removes them too); on S3,
    // every request of the expire held back 200 ms on its way to the store.
    let proxy: Awaited<ReturnType<typeof startTcpProxy>> | null = null;
    let childEnv: Record<string, string> = {};
    if (backend.name === 'filesystem') {
      const dir = join(a.repo, 'wal', '0000000100000000');
      mkdirSync(dir, { recursive: true });
      chownSync(dir, pgUser().uid, pgUser().gid);
      for (let i = 0; i < 20_000; i++) writeFileSync(join(dir, `000000010000000000000001.${i.toString(16).toUpperCase().padStart(8, '0')}.backup.zst`), '');
    } else {
      proxy = await startTcpProxy({ target: Number(new URL(a.env.WALSHIP_S3_ENDPOINT!).port), mode: () => 'slow', delayMs: 200 });
      childEnv = { WALSHIP_S3_ENDPOINT: proxy.endpoint };
    }
    // Killed as soon as its record is stored.
    const child = spawn(WALSHIP_COMMAND, ['expire', '--retain-full', '1', '--repo', a.repo, '--catalog', hostB], {
      env: { ...process.env, ...a.env, ...childEnv, WALSHIP_CONFIG: '/dev/null' },
      uid: pgUser().uid,
      gid: pgUser().gid,
      stdio: 'ignore',
    });
    const exited = new Promise((r) => child.on('exit', r));
    for (const deadline = Date.now() + 60_000; (await records()) === before && Date.now() < deadline; ) await sleep(2);
    child.kill('SIGKILL');
    await exited;
    await proxy?.close();
    // It was killed holding its lock: before it was done.
    expect(await keys()).toContain('locks/expire.json');
    const predicted = windowsOf(dry.plan.after);
    for (const catalog of [hostB, newHost('host-d')]) expect(windowsOf(json<Ranges>(await on(catalog, ['ranges', '--json']))), catalog).toEqual(predicted);
    // The next expire takes the dead process's lock over and removes what is left.
    const next = await on(hostB, ['expire', '--retain-full', '1']);
    expect(next.code, next.stderr).toBe(0);
    const left = await keys();
    expect(left.some((k) => k.startsWith(`backups/${ids.b3}/`))).toBe(false);
    expect(left.some((k) => k.startsWith('locks/'))).toBe(false);
    expect(left.some((k) => k.startsWith('wal/0000000100000000/'))).toBe(false);
    expect(windowsOf(json<Ranges>(await on(a.catalog, ['ranges', '--json'])))).toEqual(predicted);
  });

  it('two expires cannot both run: a live lock refuses (exit 11), a stale one is taken over', async () => {
    const lock = async (doc: object) => {
      await backend.driver().replace('locks/expire.json', Buffer.from(JSON.stringify(doc)));
      // Planted by this (root) process: made the cluster user's, as walship's own lock would be.
      if (backend.name === 'filesystem') for (const p of ['locks', 'locks/expire.json']) chownSync(join(a.repo, p), pgUser().uid, pgUser().gid);
    };
    const now = new Date().toISOString();
    await lock({ format: 1, token: 'a', host: hostname(), pid: process.pid, command: 'walship expire', since: now, refreshed: now });
    const busy = await on(hostB, ['expire', '--retain-full', '1']);
    expect(busy.code).toBe(11);
    expect(busy.stderr).toMatch(new RegExp(`another walship expire holds .*locks/expire.json: pid ${process.pid} on ${hostname()}`));
    await lock({ format: 1, token: 'b', host: 'elsewhere', pid: 1, command: 'walship expire', since: now, refreshed: now });
    expect((await on(hostB, ['expire', '--retain-full', '1'])).code).toBe(11);
    const old = new Date(Date.now() - 10 * 60_000).toISOString();
    await lock({ format: 1, token: 'c', host: 'elsewhere', pid: 1, command: 'walship expire', since: old, refreshed: old });
    const taken = await on(hostB, ['expire', '--retain-full', '1']);
    expect(taken.code, taken.stderr).toBe(0);
    expect(taken.stderr).toMatch(/taking over a stale lock: it was last refreshed \d+ s ago/);
    expect((await keys()).some((k) => k.startsWith('locks/'))).toBe(false);
  });
});
