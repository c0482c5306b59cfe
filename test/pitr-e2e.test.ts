/**
 * End to end: a live PostgreSQL archives through walship; after a base backup it commits rows at
 * known times (track_commit_timestamp gives each commit record's exact time), creates a restore
 * point and switches WAL. For several targets `walship plan --json` chooses the backup and the
 * settings; a fresh copy of the backup recovered with exactly those settings must hold exactly
 * the rows committed up to the target. A recovered clone then archives a new timeline into the
 * same repository, and plans along timeline 2 (WAL read from timeline 1, then 2) must recover it.
 * Last, a segment is removed (object and catalog row) and the planner must refuse a target in
 * the gap, and one before the backup.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { appendFileSync, existsSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { PgCluster, confString, runAsUser, removeTempDir, userTempDir, walshipCommand, writeUserFile } from './helpers/pg.js';
import { walship } from './helpers/walship.js';
import { fsBackend } from './helpers/backends.js';
import { formatIso, parseTargetTime } from '../src/time.js';
import type { Plan } from '../src/recovery/plan.js';
import { parseLsn } from '../src/wal/names.js';
import type { RangesReport } from '../src/recovery/ranges.js';

const micros = (pgText: string): number => {
  const r = parseTargetTime(pgText);
  if (!('micros' in r)) throw new Error(r.error);
  return r.micros;
};

describe('point-in-time recovery planned by walship', () => {
  const backend = fsBackend();
  let primary: PgCluster;
  let work: string;
  let repo: string;
  let catalog: string;
  let env: Record<string, string>;
  let settings: string;
  const backupData = () => join(work, 'backup', 'data');
  /** id → commit time (µs) and xid, in commit order. */
  const commits: { id: number; time: number; xid: number }[] = [];
  let rpLsn = '';
  let lsnAfter4 = '';
  const segs: Record<string, string> = {};

  const cli = (args: string[]) => walship([...args, '--repo', repo, '--catalog', catalog], { env, asUser: true });

  async function commitRow(id: number): Promise<void> {
    await primary.sql(`INSERT INTO t VALUES (${id}, 'row ${id}')`);
    const [time, xid] = (await primary.sql(`SELECT pg_xact_commit_timestamp(xmin), xmin FROM t WHERE id = ${id}`))[0]!;
    commits.push({ id, time: micros(time!), xid: Number(xid) });
    await new Promise((r) => setTimeout(r, 60));
  }

  /** Recovers a fresh copy of the base backup with the plan's settings; returns the ids in t. */
  async function recover(plan: Plan, tag: string): Promise<{ ids: string; log: string }> {
    const base = userTempDir(`pitr-${tag}`);
    await runAsUser('cp', ['-a', backupData(), join(base, 'data')]);
    const c = await PgCluster.create({ baseDir: base, noInit: true, conf: { archive_mode: 'off' }, env });
    try {
      appendFileSync(join(c.dataDir, 'postgresql.conf'), `\n# walship plan\n${plan.conf.join('\n')}\n`);
      writeUserFile(join(c.dataDir, 'recovery.signal'), '');
      await c.start();
      await c.waitPromoted();
      const ids = await c.value("SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM t");
      return { ids, log: readFileSync(c.logFile, 'utf8') };
    } finally {
      await c.destroy();
    }
  }

  async function planFor(args: string[]): Promise<Plan> {
    const restore = walshipCommand(`archive-fetch %f %p ${settings}`);
    const r = await cli(['plan', '--json', '--restore-command', restore, ...args]);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as Plan;
    expect(plan.reachable).toBe(true);
    expect(plan.backup.label).toBe('pitr');
    expect(plan.conf[0]).toBe(`restore_command = ${confString(restore)}`);
    return plan;
  }

  beforeAll(async () => {
    work = userTempDir('pitr');
    const b = await backend.setup(work);
    repo = b.repo;
    env = b.env;
    catalog = join(work, 'catalog', 'walship.db');
    settings = `--repo '${repo}' --catalog '${catalog}'`;
    primary = await PgCluster.create({
      conf: {
        archive_mode: 'on',
        archive_command: confString(walshipCommand(`archive-push %p ${settings}`)),
        timezone: "'UTC'",
        log_timezone: "'UTC'",
        track_commit_timestamp: 'on',
        autovacuum: 'off',
      },
      env,
    });
    await primary.start();

    await primary.sql('CREATE TABLE t (id int primary key, note text)');
    await commitRow(0);
    await primary.waitArchived(await primary.switchWal());
    // The backup history file's STOP TIME has whole seconds: let the backup end in a later second
    // than commit 0, or a target at commit 0's time is (rightly) reachable from it.
    await new Promise((r) => setTimeout(r, 1100));
    await runAsUser('mkdir', ['-p', join(work, 'backup')]);
    await primary.baseBackup(backupData(), 'pitr');
    await commitRow(1);
    await commitRow(2);
    await commitRow(3);
    rpLsn = await primary.value("SELECT pg_create_restore_point('rp1')");
    await commitRow(4);
    lsnAfter4 = await primary.value('SELECT pg_current_wal_insert_lsn()');
    await commitRow(5);
    segs.a = await primary.switchWal();
    await commitRow(6);
    segs.b = await primary.switchWal();
    await commitRow(7);
    segs.c = await primary.switchWal();
    await primary.waitArchived(segs.c);
  });

  afterAll(async () => {
    await primary?.destroy();
    if (work) await removeTempDir(work);
  });

  const rowsUpTo = (id: number) => commits.filter((c) => c.id <= id).map((c) => c.id).join(',');

  it('ranges shows the window from the backup to the last commit, with the restore point', async () => {
    const r = await cli(['ranges', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as RangesReport;
    expect(report.timelines.map((t) => t.timeline)).toEqual([1]);
    const [w] = report.timelines[0]!.windows;
    expect(report.timelines[0]!.windows).toHaveLength(1);
    expect(w!.backup.label).toBe('pitr');
    expect(w!.end).toBe('end-of-archive');
    expect(w!.latest.time).toBe(formatIso(commits[7]!.time));
    expect(w!.latest.xid).toBe(commits[7]!.xid);
    expect(w!.timeTargets!.before).toBe(formatIso(commits[7]!.time));
    expect(w!.restorePoints.map((p) => p.name)).toEqual(['rp1']);
    // pg_create_restore_point returns the end of the record; walship lists where it starts.
    expect(parseLsn(w!.restorePoints[0]!.lsn)!).toBeLessThan(parseLsn(rpLsn)!);
    expect(parseLsn(w!.restorePoints[0]!.lsn)!).toBeGreaterThan(parseLsn(rpLsn)! - 200);
    expect(report.archiveLag!.newestXactTime).toBe(formatIso(commits[7]!.time));
    const text = await cli(['ranges']);
    expect(text.stdout).toMatch(/timeline 1\n/);
    expect(text.stdout).toMatch(/restore point "rp1"/);
  });

  it('recovers to a time between two commits', async () => {
    const target = formatIso(Math.floor((commits[2]!.time + commits[3]!.time) / 2));
    const plan = await planFor(['--target-time', target]);
    expect(plan.stop.xid).toBe(commits[3]!.xid);
    expect(plan.settings.recovery_target_time).toBeDefined();
    const { ids, log } = await recover(plan, 'time');
    expect(ids).toBe(rowsUpTo(2));
    expect(log).toMatch(new RegExp(`recovery stopping before commit of transaction ${commits[3]!.xid}`));
  });

  it('recovers to a restore point', async () => {
    const plan = await planFor(['--target-name', 'rp1']);
    expect(plan.settings.recovery_target_name).toBe("'rp1'");
    expect((await recover(plan, 'name')).ids).toBe(rowsUpTo(3));
  });

  it('recovers to an LSN', async () => {
    const plan = await planFor(['--target-lsn', lsnAfter4]);
    expect((await recover(plan, 'lsn')).ids).toBe(rowsUpTo(4));
  });

  it('recovers to a transaction id, exclusive', async () => {
    const plan = await planFor(['--target-xid', String(commits[5]!.xid), '--exclusive']);
    expect(plan.settings.recovery_target_inclusive).toBe('off');
    expect((await recover(plan, 'xid')).ids).toBe(rowsUpTo(4));
  });

  it('recovers to the end of the archive', async () => {
    const plan = await planFor(['--target', 'latest']);
    expect(plan.wal.segments[0]!.last).toBe(segs.c);
    expect((await recover(plan, 'latest')).ids).toBe(rowsUpTo(7));
  });

  it('follows the new timeline a point-in-time recovery created', async () => {
    // A clone recovered to between commits 2 and 3 promotes to timeline 2 and archives into the
    // same repository (00000002.history, a .partial of timeline 1, timeline 2's segments).
    const plan = await planFor(['--target-time', formatIso(Math.floor((commits[2]!.time + commits[3]!.time) / 2))]);
    const base = userTempDir('pitr-fork');
    await runAsUser('cp', ['-a', backupData(), join(base, 'data')]);
    const clone = await PgCluster.create({ baseDir: base, noInit: true, conf: { archive_mode: 'on' }, env });
    const tl2: { id: number; time: number }[] = [];
    try {
      appendFileSync(join(clone.dataDir, 'postgresql.conf'), `\n${plan.conf.join('\n')}\n`);
      writeUserFile(join(clone.dataDir, 'recovery.signal'), '');
      await clone.start();
      await clone.waitPromoted();
      for (const id of [100, 101]) {
        await clone.sql(`INSERT INTO t VALUES (${id}, 'timeline 2')`);
        tl2.push({ id, time: micros(await clone.value(`SELECT pg_xact_commit_timestamp(xmin) FROM t WHERE id = ${id}`)) });
        await new Promise((r) => setTimeout(r, 60));
      }
      await clone.waitArchived(await clone.switchWal());
    } finally {
      await clone.destroy();
    }

    const ranges = JSON.parse((await cli(['ranges', '--json'])).stdout) as RangesReport;
    const t2 = ranges.timelines.find((t) => t.timeline === 2)!;
    expect(t2.parent).toBe(1);
    expect(t2.windows[0]!.wal.map((w) => w.timeline)).toEqual([1, 2]);
    expect(t2.windows[0]!.latest.time).toBe(formatIso(tl2[1]!.time));
    expect(ranges.timelines.find((t) => t.timeline === 1)!.windows[0]!.branches.map((b) => b.timeline)).toEqual([2]);

    // Between the two timeline-2 commits: recovered along timeline 2 from the same backup.
    const p2 = await planFor(['--target-time', formatIso(Math.floor((tl2[0]!.time + tl2[1]!.time) / 2))]);
    expect(p2.timeline).toBe(2);
    expect(p2.wal.historyFiles).toEqual(['00000002.history']);
    expect(p2.wal.segments.map((x) => x.timeline)).toEqual([1, 2]);
    expect((await recover(p2, 'tl2')).ids).toBe(`${rowsUpTo(2)},100`);

    // A time both timelines reach: the newest timeline by default, with a note; timeline 1 on request.
    const mid56 = formatIso(Math.floor((commits[5]!.time + commits[6]!.time) / 2));
    const both = await planFor(['--target-time', mid56]);
    expect(both.timeline).toBe(2);
    expect(both.notes.join(' ')).toMatch(/timeline 1 also reaches this target with a different history/);
    const on1 = await planFor(['--target-time', mid56, '--target-timeline', '1']);
    expect(on1.wal.segments.map((x) => x.timeline)).toEqual([1]);
    expect((await recover(on1, 'tl1')).ids).toBe(rowsUpTo(5));
  });

  it('refuses a target before the backup and one inside a gap, exit 9 with alternatives', async () => {
    const before = await cli(['plan', '--target-time', formatIso(commits[0]!.time), '--target-timeline', '1']);
    expect(before.code).toBe(9);
    expect(before.stderr).toMatch(/before the earliest consistency point on timeline 1: backup pitr/);
    expect(before.stderr).toMatch(/nearest reachable: .*--target-time /);
    expect(before.stderr.trim().split('\n')).toHaveLength(1);

    // Lose segment b (commit 6): its object and its catalog row.
    const key = join(repo, 'wal', segs.b!.slice(0, 16), `${segs.b}.zst`);
    expect(existsSync(key)).toBe(true);
    unlinkSync(key);
    const db = new Database(catalog);
    db.pragma('foreign_keys = ON');
    db.prepare('DELETE FROM wal_files WHERE name = ?').run(segs.b);
    db.close();

    const gap = formatIso(Math.floor((commits[5]!.time + commits[6]!.time) / 2));
    const r = await cli(['plan', '--json', '--target-time', gap, '--target-timeline', '1']);
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(new RegExp(`falls in a gap on timeline 1: segment ${segs.b} is missing`));
    // Timeline 2 (the clone's) reaches that time along its own history: the refusal says so.
    const refusal = JSON.parse(r.stdout);
    expect(refusal).toMatchObject({ reachable: false, code: 'not-on-timeline' });
    expect(refusal.reason).toMatch(/^timeline 1 does not contain .*; timeline 2 does$/);
    expect(refusal.alternatives.map((a: { args: string }) => a.args)).toEqual([
      `--target-time ${gap} --target-timeline 2`,
      `--target-time ${formatIso(commits[5]!.time)} --exclusive --target-timeline 1`,
      expect.stringMatching(/^--target-lsn \S+ --target-timeline 1$/),
    ]);

    // Still reachable before the gap; ranges ends the window there.
    const ok = await cli(['plan', '--target-time', formatIso(commits[4]!.time), '--target-timeline', '1']);
    expect(ok.code, ok.stderr).toBe(0);
    const ranges = JSON.parse((await cli(['ranges', '--json'])).stdout) as RangesReport;
    expect(ranges.timelines[0]!.windows[0]!.end).toBe('gap');
    expect(ranges.timelines[0]!.windows[0]!.missing).toMatchObject({ first: segs.b, last: segs.b, count: 1 });
  });
});
