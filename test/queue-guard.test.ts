/**
 * push_queue_max, the pg_wal guard. The rules through the real CLI on real WAL: off by default,
 * nothing is dropped while the backlog is under the limit, a refusal of the file itself is never
 * dropped. Then a real cluster whose repository disappears: segments are acknowledged and
 * dropped only once pg_wal holds more than the limit, each drop recorded before the call returns;
 * status goes critical on the archiving host at once; once the repository is back the records are
 * stored there, and a catalog on another host shows the hole as dropped in ranges, plan and
 * status, until a new backup.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, writeFileSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { confString, pgUser, removeTempDir, userTempDir, walshipCommand } from './helpers/pg.js';
import { walship } from './helpers/walship.js';
import { makeWalFixture, type WalFixture } from './helpers/fixtures.js';
import { startArchiving, type Archiving } from './helpers/archiving.js';
import { fsBackend } from './helpers/backends.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Gives `path` and what is in it to the cluster's OS user, who runs walship here. */
const own = (path: string) => spawnSync('chown', ['-R', `${pgUser().uid}:${pgUser().gid}`, path]);

describe('push_queue_max: the rules', () => {
  let fx: WalFixture;
  let work: string;
  beforeAll(async () => {
    fx = await makeWalFixture({ segments: 3 });
    work = userTempDir('guard-rules');
  });
  afterAll(async () => {
    await removeTempDir(work);
  });

  /** A pg_wal holding the fixture's segments, all `.ready`. */
  function pgWal(): string {
    const dir = join(work, `pg_wal-${Math.random().toString(16).slice(2)}`);
    mkdirSync(join(dir, 'archive_status'), { recursive: true });
    for (const s of fx.segments) {
      copyFileSync(join(fx.dir, s), join(dir, s));
      writeFileSync(join(dir, 'archive_status', `${s}.ready`), '');
    }
    own(dir);
    return dir;
  }
  const run = (args: string[]) => walship(args, { asUser: true });
  const push = (dir: string, repo: string, extra: string[] = []) => run(['archive-push', join(dir, fx.segments[0]!), '--repo', repo, '--catalog', join(work, 'cat.db'), ...extra]);

  it('drops nothing by default, nor under the limit, nor a file the repository refuses', async () => {
    const gone = join(work, 'no-such-repo');
    const wal = pgWal(); // 3 segments of 1 MiB wait
    expect((await push(wal, gone)).code).toBe(6);
    expect((await push(wal, gone, ['--push-queue-max', '3MB'])).code).toBe(6); // 3 MiB is not more than 3 MiB
    const dropped = await push(wal, gone, ['--push-queue-max', '2MB']);
    expect(dropped.code, dropped.stderr).toBe(0);
    expect(dropped.stderr).toMatch(/push_queue_max: 0000000100000000000000\w\w acknowledged WITHOUT being archived: 3 MiB of WAL wait in pg_wal/);
    expect(readdirSync(join(work, 'cat.db.gaps'))).toEqual([`${fx.segments[0]}.json`]);
    // Another cluster's file under this name is refused, full pg_wal or not.
    const repo = join(work, 'repo');
    mkdirSync(repo);
    const other = await makeWalFixture({ segments: 1 });
    const otherWal = pgWal();
    copyFileSync(join(other.dir, other.segments[0]!), join(otherWal, fx.segments[0]!));
    own(otherWal);
    own(repo);
    expect((await run(['archive-push', join(wal, fx.segments[1]!), '--repo', repo, '--catalog', join(work, 'cat2.db')])).code).toBe(0);
    const refused = await run(['archive-push', join(otherWal, fx.segments[0]!), '--repo', repo, '--catalog', join(work, 'cat2.db'), '--push-queue-max', '1MB']);
    expect(refused.code).toBe(5);
    expect(existsSync(join(work, 'cat2.db.gaps'))).toBe(false);
    const bad = await run(['archive-push', join(wal, fx.segments[0]!), '--repo', repo, '--push-queue-max', '12 parsecs']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid push_queue_max = '12 parsecs'.*expected a size such as 512MB/);
  });
});

describe('push_queue_max on a cluster whose repository disappears (filesystem repository)', () => {
  let a: Archiving;
  let away: string;
  let seg: (n: number) => string;
  const otherCatalog = () => join(a.work, 'other-host', 'walship.db');

  beforeAll(async () => {
    a = await startArchiving(fsBackend(), 'guard');
    away = `${a.repo}.away`;
    const p = a.primary;
    await p.sql(`ALTER SYSTEM SET archive_command = ${confString(walshipCommand(`archive-push %p ${a.settings} --push-queue-max 32MB`))}`);
    await p.sql('SELECT pg_reload_conf()');
    await p.sql('CREATE TABLE t (id int)');
    const b = await a.run(['backup'], a.pgEnv());
    expect(b.code, b.stderr).toBe(0);
    await p.sql('INSERT INTO t VALUES (1)');
    const base = await p.switchWal();
    await p.waitArchived(base);
    const n0 = parseInt(base.slice(16), 16);
    seg = (n: number) => `${base.slice(0, 16)}${(n0 + n).toString(16).toUpperCase().padStart(8, '0')}`;
    const dir = join(a.work, 'other-host');
    mkdirSync(dir);
    chownSync(dir, pgUser().uid, pgUser().gid);
  });
  afterAll(async () => {
    if (existsSync(away)) renameSync(away, a.repo);
    await a?.cleanup();
  });

  it('drops segments only beyond the limit, records each, and status is critical at once', async () => {
    const p = a.primary;
    renameSync(a.repo, away);
    // Four segments wait: 64 MiB > 32 MiB drops the first, 48 MiB > 32 MiB the second; with two
    // left (32 MiB) the third waits for the repository.
    for (let i = 0; i < 4; i++) {
      await p.sql(`INSERT INTO t VALUES (${i + 10})`);
      await p.switchWal();
    }
    await p.waitArchived(seg(2));
    await sleep(1500);
    expect(await p.value('SELECT last_archived_wal FROM pg_stat_archiver')).toBe(seg(2));
    expect(Number(await p.value('SELECT failed_count FROM pg_stat_archiver'))).toBeGreaterThan(0);
    expect(existsSync(join(p.dataDir, 'pg_wal', 'archive_status', `${seg(3)}.ready`))).toBe(true);
    expect(readdirSync(`${a.catalog}.gaps`).sort()).toEqual([`${seg(1)}.json`, `${seg(2)}.json`]);

    const s = await walship(['status', '--json', '--repo', a.repo, '--catalog', a.catalog], { env: a.env, asUser: true });
    expect(s.code).toBe(2);
    const doc = JSON.parse(s.stdout);
    expect(doc.archiving.dropped).toMatchObject({ count: 2, first: seg(1), last: seg(2), afterNewestBackup: 2 });
    expect(doc.reasons).toEqual(expect.arrayContaining([expect.objectContaining({ level: 'critical', what: expect.stringMatching(/^push_queue_max dropped 2 segment\(s\) since the newest backup/) })]));
  });

  it('stores the records once the repository is back; another host sees the hole as dropped in ranges, plan and status until a new backup', async () => {
    const p = a.primary;
    renameSync(away, a.repo);
    await p.sql('INSERT INTO t VALUES (99)');
    const last = await p.switchWal(); // wakes the archiver
    await p.waitArchived(last, 120_000);
    expect(readdirSync(join(a.repo, 'gaps')).sort()).toEqual([`${seg(1)}.json`, `${seg(2)}.json`]);
    expect(existsSync(`${a.catalog}.gaps`)).toBe(false);

    const other = (args: string[]) => walship([...args, '--repo', a.repo, '--catalog', otherCatalog()], { env: a.env, asUser: true });
    const ranges = JSON.parse((await other(['ranges', '--json'])).stdout);
    const w = ranges.timelines[0].windows[0];
    expect(w.end).toBe('gap');
    expect(w.missing).toMatchObject({ first: seg(1), last: seg(2), count: 2, dropped: { count: 2, reason: expect.stringMatching(/repository/) } });
    expect((await other(['ranges'])).stdout).toMatch(/gap: .* missing \(2 dropped by push_queue_max from /);
    const planned = await other(['plan', '--target', 'latest', '--json']);
    expect(planned.code).toBe(0);
    expect(JSON.parse(planned.stdout).notes.join(' ')).toMatch(/archive-push dropped them under push_queue_max from /);
    const past = await other(['plan', '--target-time', new Date(Date.now() + 3_600_000).toISOString()]);
    expect(past.code).toBe(9);
    const st = JSON.parse((await other(['status', '--json'])).stdout);
    expect(st.state).toBe('critical');
    expect(st.archiving.dropped).toMatchObject({ count: 2, afterNewestBackup: 2 });
    const prom = (await other(['status', '--prometheus'])).stdout;
    expect(prom).toMatch(/\nwalship_dropped_segments 2\n/);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: prom, encoding: 'utf8' });
    if (check.error) throw new Error(`promtool is needed for this test (apt-get install prometheus): ${check.error.message}`);
    expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);

    const b = await a.run(['backup'], a.pgEnv());
    expect(b.code, b.stderr).toBe(0);
    const after = JSON.parse((await other(['status', '--json'])).stdout);
    expect(after.archiving.dropped).toMatchObject({ count: 2, afterNewestBackup: 0 });
    expect(after.reasons.map((r: { what: string }) => r.what).join('\n')).not.toMatch(/push_queue_max/);
  });
});
