/**
 * The planner on hand-built archives: backups, gaps, forks, restore points, xids and commits
 * whose times do not increase in WAL order.
 */
import { describe, expect, it } from 'vitest';
import { planRecovery, type Plan, type PlanResult, type Refusal, type Target } from '../src/recovery/plan.js';
import { refusalLine } from '../src/recovery/plan-render.js';
import { computeRanges, renderRanges } from '../src/recovery/ranges.js';
import { formatIso } from '../src/time.js';
import { formatLsn } from '../src/wal/names.js';
import { ArchiveBuilder, L, T } from './helpers/archive-builder.js';

const RC = 'walship archive-fetch %f %p';
const plan = (b: ArchiveBuilder, target: Target, opts: { timeline?: number; inclusive?: boolean } = {}) =>
  planRecovery(b.input(), target, { restoreCommand: RC, ...opts });
const ok = (r: PlanResult): Plan => {
  if (!r.reachable) throw new Error(`expected a plan, got refusal: ${refusalLine(r)}`);
  return r;
};
const no = (r: PlanResult): Refusal => {
  if (r.reachable) throw new Error(`expected a refusal, got a plan: ${r.stop.description}`);
  return r;
};

/** Timeline 1, segments 1..10, backup b1 in segment 2, one commit per segment at T(10 + seg). */
function simple(): ArchiveBuilder {
  const b = new ArchiveBuilder().segs(1, 1, 10);
  b.xact(1, L(1, 0x1000), T(5));
  b.xact(1, L(2, 0x100), T(9, 30)); // during the backup
  b.backup('b1', L(2, 0x28), L(2, 0x1e8), T(10));
  for (let s = 2; s <= 10; s++) b.xact(1, L(s, 0x1000), T(10 + s), { xid: 2000 + s });
  return b;
}

describe('plan: time targets on one timeline', () => {
  it('stops before the first transaction that ended after the target and names what it needs', () => {
    const p = ok(plan(simple(), { type: 'time', time: T(15, 30) }));
    expect(p.backup.label).toBe('b1');
    expect(p.timeline).toBe(1);
    expect(p.stop.lsn).toBe(formatLsn(L(6, 0x1000)));
    expect(p.stop.description).toMatch(/before the commit of transaction 2006/);
    expect(p.stop.description).toMatch(/last transaction replayed ends at 2026-11-24T10:15:00Z \(transaction 2005/);
    expect(p.wal.segments).toEqual([{ timeline: 1, first: '000000010000000000000002', last: '000000010000000000000006', count: 5 }]);
    expect(p.wal.historyFiles).toEqual([]);
    expect(p.conf).toEqual([
      "restore_command = 'walship archive-fetch %f %p'",
      "recovery_target_time = '2026-11-24 10:15:30+00'",
      "recovery_target_timeline = '1'",
      "recovery_target_action = 'promote'",
    ]);
  });

  it('inclusive includes a transaction at exactly the target time, exclusive does not', () => {
    const incl = ok(plan(simple(), { type: 'time', time: T(16) }));
    expect(incl.stop.lsn).toBe(formatLsn(L(7, 0x1000)));
    const excl = ok(plan(simple(), { type: 'time', time: T(16) }, { inclusive: false }));
    expect(excl.stop.lsn).toBe(formatLsn(L(6, 0x1000)));
    expect(excl.settings.recovery_target_inclusive).toBe('off');
    expect(excl.target.inclusive).toBe(false);
  });

  it('refuses a time before the consistency point, offering the earliest reachable', () => {
    const r = no(plan(simple(), { type: 'time', time: T(9) }));
    expect(r.code).toBe('before-earliest');
    expect(r.reason).toMatch(/before the earliest consistency point on timeline 1: backup b1 .* consistent from 2026-11-24T10:10:00Z/);
    expect(r.alternatives.map((a) => a.args)).toContain('--target-time 2026-11-24T10:10:00Z --target-timeline 1');
    expect(r.alternatives.map((a) => a.args)).toContain('--target immediate --target-timeline 1');
    expect(refusalLine(r)).not.toMatch(/\n/);
  });

  it('refuses a time at or after the newest archived transaction, pointing to latest', () => {
    const r = no(plan(simple(), { type: 'time', time: T(20) }));
    expect(r.code).toBe('after-latest');
    expect(r.reason).toMatch(/newest ends at 2026-11-24T10:20:00Z/);
    expect(r.alternatives.map((a) => a.args)).toEqual(['--target-time 2026-11-24T10:20:00Z --exclusive --target-timeline 1', '--target latest --target-timeline 1']);
    // exclusive at exactly the newest transaction: stops before it.
    expect(ok(plan(simple(), { type: 'time', time: T(20) }, { inclusive: false })).stop.lsn).toBe(formatLsn(L(10, 0x1000)));
  });

  it('refuses when a transaction between start and stop of the backup is later than the target', () => {
    const b = simple();
    b.xact(1, L(2, 0x180), T(10, 30)); // clock ahead during the backup
    const r = no(plan(b, { type: 'time', time: T(10, 10) }));
    expect(r.code).toBe('before-earliest');
    expect(r.reason).toMatch(/consistent from 2026-11-24T10:10:30Z/);
    expect(ok(plan(b, { type: 'time', time: T(10, 30) })).stop.lsn).toBe(formatLsn(L(2, 0x1000)));
  });

  it('follows WAL order, not time order, when commit times go backwards', () => {
    const b = new ArchiveBuilder().segs(1, 1, 4);
    b.backup('b', L(1, 0x28), L(1, 0x100), T(0));
    b.xact(1, L(2, 0x100), T(10), { xid: 1 });
    b.xact(1, L(2, 0x200), T(30), { xid: 2 });
    b.xact(1, L(3, 0x100), T(20), { xid: 3 });
    b.xact(1, L(4, 0x100), T(40), { xid: 4 });
    // 25: the first record past it is xid 2 (30), so xid 3 (20) is not replayed either.
    const p = ok(plan(b, { type: 'time', time: T(25) }));
    expect(p.stop.description).toMatch(/before the commit of transaction 2 /);
    // 35: xid 1, 2, 3 replayed, stops before xid 4.
    expect(ok(plan(b, { type: 'time', time: T(35) })).stop.description).toMatch(/transaction 4 .*last transaction replayed ends at 2026-11-24T10:20:00Z \(transaction 3/);
    const rg = computeRanges(b.input(), T(100));
    expect(rg.timelines[0]!.windows[0]!.timeTargets).toEqual({ from: formatIso(T(0)), before: formatIso(T(40)) });
    expect(rg.timelines[0]!.windows[0]!.latest.xid).toBe(4);
  });

  it('treats a transaction whose record continues into a missing segment as not archived', () => {
    const b = simple();
    b.xact(1, L(10, 0xfff800), T(25), { len: 0x2000 }); // ends in segment 11, which is missing
    expect(no(plan(b, { type: 'time', time: T(21) })).code).toBe('after-latest');
  });

  it('refuses when an unscanned segment lies on the way', () => {
    const b = simple().segs(1, 5, 5, { scanned: false });
    expect(no(plan(b, { type: 'time', time: T(17) })).code).toBe('unscanned');
    expect(ok(plan(b, { type: 'time', time: T(13) })).stop.lsn).toBe(formatLsn(L(4, 0x1000)));
  });
});

/** Segments 1..5 and 8..12 (6, 7 missing); b1 in 2, b2 in 9, b3 in 3. */
function gapped(): ArchiveBuilder {
  const b = new ArchiveBuilder().segs(1, 1, 5).segs(1, 8, 12);
  b.backup('b1', L(2, 0x28), L(2, 0x1e8), T(2));
  b.backup('b3', L(3, 0x28), L(3, 0x1e8), T(3));
  b.backup('b2', L(9, 0x28), L(9, 0x1e8), T(9));
  for (const s of [1, 2, 3, 4, 5, 8, 9, 10, 11, 12]) b.xact(1, L(s, 0x1000), T(s, 30), { xid: 100 + s });
  b.rp(1, L(4, 0x2000), 'before-gap', T(4, 40));
  b.rp(1, L(11, 0x2000), 'after-gap', T(11, 40));
  return b;
}

describe('plan and ranges: gaps and several backups', () => {
  it('ranges splits at the gap and lists backups, restore points and the missing segments', () => {
    const r = computeRanges(gapped().input(), T(13));
    expect(r.timelines).toHaveLength(1);
    const [w1, w2] = r.timelines[0]!.windows;
    expect(r.timelines[0]!.windows).toHaveLength(2);
    expect(w1!.backup.label).toBe('b1');
    expect(w1!.newerBackups.map((b) => b.label)).toEqual(['b3']);
    expect(w1!.earliest).toEqual({ lsn: formatLsn(L(2, 0x1e8)), time: formatIso(T(2)) });
    expect(w1!.end).toBe('gap');
    expect(w1!.missing).toEqual({ first: '000000010000000000000006', last: '000000010000000000000007', count: 2, dropped: null });
    expect(w1!.latest).toEqual({ lsn: formatLsn(L(5, 0xfff040)), time: formatIso(T(5, 30)), xid: 105 });
    expect(w1!.restorePoints.map((p) => p.name)).toEqual(['before-gap']);
    expect(w1!.wal).toEqual([{ timeline: 1, first: '000000010000000000000002', last: '000000010000000000000005', count: 4 }]);
    expect(w2!.backup.label).toBe('b2');
    expect(w2!.end).toBe('end-of-archive');
    expect(w2!.restorePoints.map((p) => p.name)).toEqual(['after-gap']);
    expect(r.archiveLag).toEqual({ newestXactTime: formatIso(T(12, 30)), segment: '00000001000000000000000C', timeline: 1, seconds: 30 });
  });

  it('names a gap push_queue_max made as dropped, in ranges and in a refusal', () => {
    const input = { ...gapped().input(), dropped: [{ timeline: 1, segNo: 7, at: '2026-11-24T10:07:00Z', reason: 'cannot write in repository /r: EACCES' }] };
    const w1 = computeRanges(input, T(13)).timelines[0]!.windows[0]!;
    expect(w1.missing).toEqual({ first: '000000010000000000000006', last: '000000010000000000000007', count: 2, dropped: { count: 1, at: '2026-11-24T10:07:00Z', reason: 'cannot write in repository /r: EACCES' } });
    expect(renderRanges(computeRanges(input, T(13)))).toMatch(/gap: 000000010000000000000006\.\.000000010000000000000007 missing \(1 dropped by push_queue_max from 2026-11-24T10:07:00Z\)/);
    const r = no(planRecovery(input, { type: 'time', time: T(7) }, { restoreCommand: 'x' }));
    expect(r.code).toBe('in-gap');
    expect(r.reason).toMatch(/segments 000000010000000000000006\.\.000000010000000000000007 are missing \(archive-push dropped 1 of them under push_queue_max from 2026-11-24T10:07:00Z, the repository failing: cannot write in repository \/r: EACCES\)/);
    // Dropped on another timeline: not this gap.
    expect(computeRanges({ ...input, dropped: [{ ...input.dropped[0]!, timeline: 2 }] }, T(13)).timelines[0]!.windows[0]!.missing!.dropped).toBeNull();
  });

  it('uses the newest backup consistent before the target', () => {
    expect(ok(plan(gapped(), { type: 'time', time: T(2, 45) })).backup.label).toBe('b1');
    const p = ok(plan(gapped(), { type: 'time', time: T(4) }));
    expect(p.backup.label).toBe('b3');
    expect(p.wal.segments[0]!.first).toBe('000000010000000000000003');
    expect(ok(plan(gapped(), { type: 'time', time: T(10) })).backup.label).toBe('b2');
  });

  it('refuses a time inside the gap with the nearest reachable points on both sides', () => {
    const r = no(plan(gapped(), { type: 'time', time: T(7) }));
    expect(r.code).toBe('in-gap');
    expect(r.reason).toMatch(/segments 000000010000000000000006\.\.000000010000000000000007 are missing/);
    expect(r.alternatives.map((a) => a.args)).toEqual([
      '--target-time 2026-11-24T10:05:30Z --exclusive --target-timeline 1',
      `--target-lsn ${formatLsn(L(5, 0xfff000))} --target-timeline 1`,
      '--target-time 2026-11-24T10:09:00Z --target-timeline 1',
    ]);
  });

  it('plans latest to the end of the newest window, and LSN targets around the gap', () => {
    const p = ok(plan(gapped(), { type: 'latest' }));
    expect(p.backup.label).toBe('b2');
    expect(p.conf).toEqual(["restore_command = 'walship archive-fetch %f %p'", "recovery_target_timeline = '1'", "recovery_target_action = 'promote'"]);
    expect(p.wal.segments[0]!.last).toBe('00000001000000000000000C');

    const lsn = ok(plan(gapped(), { type: 'lsn', lsn: L(4, 0x10) }));
    expect(lsn.backup.label).toBe('b3');
    expect(lsn.settings.recovery_target_lsn).toBe(`'${formatLsn(L(4, 0x10))}'`);
    expect(lsn.wal.segments[0]!.last).toBe('000000010000000000000004');
    expect(no(plan(gapped(), { type: 'lsn', lsn: L(6, 0x10) })).code).toBe('in-gap');
    expect(no(plan(gapped(), { type: 'lsn', lsn: L(1, 0x10) })).code).toBe('before-earliest');
    expect(no(plan(gapped(), { type: 'lsn', lsn: L(12, 0xfff010) })).code).toBe('after-latest');
    expect(ok(plan(gapped(), { type: 'lsn', lsn: L(12, 0xfff000) })).backup.label).toBe('b2');
    expect(ok(plan(gapped(), { type: 'lsn', lsn: L(9, 0x1e8) })).backup.label).toBe('b2');
  });

  it('reaches restore points from the right backup and refuses unknown names', () => {
    const p = ok(plan(gapped(), { type: 'name', name: 'before-gap' }));
    expect(p.backup.label).toBe('b3');
    expect(p.settings.recovery_target_name).toBe("'before-gap'");
    expect(p.stop.description).toMatch(/stops after restore point "before-gap"/);
    expect(p.settings.recovery_target_inclusive).toBeUndefined();
    expect(ok(plan(gapped(), { type: 'name', name: 'after-gap' })).backup.label).toBe('b2');
    const r = no(plan(gapped(), { type: 'name', name: 'nope' }));
    expect(r.code).toBe('unknown-name');
    expect(r.reason).toMatch(/no archived restore point is named "nope" \(archived: "before-gap", "after-gap"\)/);
  });

  it('reaches the newest occurrence of a repeated restore point name, noting the others', () => {
    const b = gapped().rp(1, L(12, 0x3000), 'before-gap', T(12, 40));
    const p = ok(plan(b, { type: 'name', name: 'before-gap' }));
    expect(p.backup.label).toBe('b2');
    expect(p.stop.lsn).toBe(formatLsn(L(12, 0x3000)));
    expect(p.notes[0]).toMatch(/2 archived occurrences/);
  });

  it('refuses a restore point before every backup', () => {
    const b = gapped().rp(1, L(1, 0x2000), 'early', T(1, 40));
    expect(no(plan(b, { type: 'name', name: 'early' })).code).toBe('before-earliest');
  });

  it('reaches a transaction id after a backup, refuses one before it or unknown', () => {
    const p = ok(plan(gapped(), { type: 'xid', xid: 110 }));
    expect(p.backup.label).toBe('b2');
    expect(p.settings.recovery_target_xid).toBe("'110'");
    expect(p.stop.description).toMatch(/stops after the commit of transaction 110/);
    expect(ok(plan(gapped(), { type: 'xid', xid: 110 }, { inclusive: false })).stop.description).toMatch(/stops before/);
    expect(no(plan(gapped(), { type: 'xid', xid: 101 })).code).toBe('before-earliest');
    expect(no(plan(gapped(), { type: 'xid', xid: 9999 })).code).toBe('unknown-xid');
  });

  it('immediate restores the newest usable backup', () => {
    const p = ok(plan(gapped(), { type: 'immediate' }));
    expect(p.backup.label).toBe('b2');
    expect(p.settings.recovery_target).toBe("'immediate'");
    expect(p.wal.segments).toEqual([{ timeline: 1, first: '000000010000000000000009', last: '000000010000000000000009', count: 1 }]);
  });

  it('calls a backup unusable when its own WAL is missing', () => {
    const b = gapped().drop(1, 9);
    const r = computeRanges(b.input(), T(13));
    expect(r.timelines[0]!.unusableBackups).toEqual([
      { name: 'b2.backup', label: 'b2', reason: `segment 000000010000000000000009 of the WAL it needs (start ${formatLsn(L(9, 0x28))} to stop ${formatLsn(L(9, 0x1e8))}) is not archived` },
    ]);
    expect(r.timelines[0]!.windows).toHaveLength(1);
    expect(no(plan(b, { type: 'time', time: T(10) })).code).toBe('in-gap');
  });

  it('refuses with no backup at all', () => {
    const b = new ArchiveBuilder().segs(1, 1, 3);
    b.xact(1, L(2, 0x100), T(1));
    expect(no(plan(b, { type: 'latest' })).code).toBe('no-backup');
    expect(computeRanges(b.input(), T(2)).timelines[0]!.windows).toEqual([]);
    expect(no(planRecovery(new ArchiveBuilder().input(), { type: 'latest' }, { restoreCommand: RC })).reason).toMatch(/nothing is archived/);
  });
});

/**
 * Timeline 1: segments 1..6 (6 only up to the fork: archived as .partial, so absent here).
 * Timeline 2 branched at 0/6000100 (segment 6) and wrote 6..9; timeline 3 branched off 2 at
 * 0/8000200 and wrote 8..10. Backup b1 on timeline 1, b2 on timeline 2 in segment 7.
 */
function forked(): ArchiveBuilder {
  const b = new ArchiveBuilder().segs(1, 1, 5).segs(2, 6, 9).segs(3, 8, 10);
  b.fork(2, 1, L(6, 0x100)).fork(3, 2, L(8, 0x200));
  b.backup('b1', L(2, 0x28), L(2, 0x1e8), T(2));
  b.backup('b2', L(7, 0x28), L(7, 0x1e8), T(7), 2);
  for (let s = 2; s <= 5; s++) b.xact(1, L(s, 0x1000), T(s, 30));
  b.xact(2, L(6, 0x80), T(5, 50)); // copied from timeline 1 before the switchpoint
  b.xact(2, L(6, 0x1000), T(6, 30));
  b.xact(2, L(7, 0x1000), T(7, 30));
  b.xact(2, L(8, 0x100), T(8, 10));
  b.xact(2, L(8, 0x1000), T(8, 30)); // timeline 2 only (after 3's switchpoint)
  b.xact(2, L(9, 0x1000), T(9, 30));
  b.xact(3, L(8, 0x100), T(8, 10)); // the same record in timeline 3's copy
  b.xact(3, L(8, 0x1000), T(8, 40));
  b.xact(3, L(9, 0x1000), T(9, 40));
  b.xact(3, L(10, 0x1000), T(10, 40));
  b.rp(2, L(7, 0x2000), 'on-two', T(7, 40));
  return b;
}

describe('plan and ranges: timelines', () => {
  it('ranges gives each timeline its windows read along its own history', () => {
    const r = computeRanges(forked().input(), T(11));
    expect(r.timelines.map((t) => [t.timeline, t.parent, t.switchpoint])).toEqual([
      [1, null, null],
      [2, 1, formatLsn(L(6, 0x100))],
      [3, 2, formatLsn(L(8, 0x200))],
    ]);
    const t1 = r.timelines[0]!.windows;
    expect(t1).toHaveLength(1);
    expect(t1[0]!.end).toBe('timeline-end');
    expect(t1[0]!.branches).toEqual([{ timeline: 2, at: formatLsn(L(6, 0x100)) }]);
    const t2 = r.timelines[1]!.windows;
    expect(t2).toHaveLength(1);
    expect(t2[0]!.backup.label).toBe('b1');
    expect(t2[0]!.newerBackups.map((b) => b.label)).toEqual(['b2']);
    expect(t2[0]!.wal).toEqual([
      { timeline: 1, first: '000000010000000000000002', last: '000000010000000000000005', count: 4 },
      { timeline: 2, first: '000000020000000000000006', last: '000000020000000000000009', count: 4 },
    ]);
    expect(t2[0]!.latest.time).toBe(formatIso(T(9, 30)));
    expect(t2[0]!.end).toBe('timeline-end');
    expect(t2[0]!.restorePoints.map((p) => [p.name, p.timeline])).toEqual([['on-two', 2]]);
    const t3 = r.timelines[2]!.windows;
    expect(t3[0]!.wal.map((w) => w.timeline)).toEqual([1, 2, 3]);
    expect(t3[0]!.latest.time).toBe(formatIso(T(10, 40)));
    expect(t3[0]!.end).toBe('end-of-archive');
  });

  it('picks the newest timeline holding the target and reads each segment from the right copy', () => {
    const p = ok(plan(forked(), { type: 'time', time: T(9, 20) }));
    expect(p.timeline).toBe(3);
    expect(p.backup.label).toBe('b2');
    expect(p.wal.segments.map((s) => `${s.first}..${s.last}`)).toEqual(['000000020000000000000007..000000020000000000000007', '000000030000000000000008..000000030000000000000009']);
    expect(p.wal.historyFiles).toEqual(['00000002.history', '00000003.history']);
    expect(p.settings.recovery_target_timeline).toBe("'3'");
    // 9:20 is also reachable on timeline 2, where history differs after 0/8000200.
    expect(p.notes.join(' ')).toMatch(/timeline 2 also reaches this target with a different history/);
  });

  it('plans on an explicit timeline, and refuses one that does not contain the target', () => {
    const p = ok(plan(forked(), { type: 'time', time: T(8, 20) }, { timeline: 2 }));
    expect(p.stop.description).toMatch(/before the commit of transaction \d+ at 0\/8001000 \(2026-11-24T10:08:30Z\)/);
    // Before the fork, timeline 1 from b1: segments only from timeline 1.
    const early = ok(plan(forked(), { type: 'time', time: T(3) }, { timeline: 1 }));
    expect(early.wal.segments).toEqual([{ timeline: 1, first: '000000010000000000000002', last: '000000010000000000000003', count: 2 }]);
    const r = no(plan(forked(), { type: 'time', time: T(9) }, { timeline: 1 }));
    expect(r.code).toBe('not-on-timeline');
    expect(r.reason).toMatch(/timeline 1 does not contain 2026-11-24T10:09:00Z .*timeline 3, 2 do/);
    expect(r.alternatives[0]!.args).toBe('--target-time 2026-11-24T10:09:00Z --target-timeline 3');
    expect(no(plan(forked(), { type: 'latest' }, { timeline: 7 })).code).toBe('unknown-timeline');
  });

  it('immediate picks the newest backup of any timeline, on its own timeline', () => {
    const b = forked();
    expect(ok(plan(b, { type: 'immediate' })).backup.label).toBe('b2');
    b.backup('b9', L(5, 0x28), L(5, 0x1e8), T(5), 1); // newest of timeline 1, before the fork
    const p = ok(plan(b, { type: 'immediate' }));
    expect([p.backup.label, p.timeline]).toEqual(['b2', 2]);
    b.backup('b10', L(9, 0x128), L(9, 0x1e8), T(9, 10), 2); // on 2 after 3 branched off
    expect([ok(plan(b, { type: 'immediate' })).backup.label, ok(plan(b, { type: 'immediate' })).timeline]).toEqual(['b10', 2]);
  });

  it('does not use a backup taken on another branch', () => {
    // b2 was taken on timeline 2 after the fork: timeline 1's history does not hold it.
    const r = computeRanges(forked().input(), T(11));
    expect(r.timelines[0]!.windows[0]!.newerBackups).toEqual([]);
    const b = forked().backup('b3', L(9, 0x28), L(9, 0x1e8), T(9), 2);
    const t3 = computeRanges(b.input(), T(11)).timelines[2]!;
    expect(t3.windows[0]!.newerBackups.map((x) => x.label)).toEqual(['b2']); // b3 at 0/9000028 is past 3's switchpoint on 2
  });

  it('restore point on one branch: found there, named with the timeline elsewhere', () => {
    expect(ok(plan(forked(), { type: 'name', name: 'on-two' })).timeline).toBe(3); // 3 inherits it (before 0/8000200)
    const b = forked().rp(2, L(9, 0x2000), 'late-two', T(9, 45));
    expect(ok(plan(b, { type: 'name', name: 'late-two' })).timeline).toBe(2);
    const r = no(plan(b, { type: 'name', name: 'late-two' }, { timeline: 3 }));
    expect(r.code).toBe('not-on-timeline');
    expect(r.alternatives[0]!.args).toBe('--target-name "late-two" --target-timeline 2');
  });

  it("ends a child's window where its copy of the switch segment is missing, and pins latest there", () => {
    // Timeline 2's copy of segment 6 is missing; timeline 1's full segment 6 exists (the old
    // primary kept writing after the fork): PostgreSQL would fall back to it.
    const b = forked().drop(2, 6).segs(1, 6, 6);
    b.backups = b.backups.filter((x) => x.label !== 'b2');
    const r = computeRanges(b.input(), T(11));
    const t2 = r.timelines[1]!;
    expect(t2.windows[0]!.end).toBe('gap');
    expect(t2.windows[0]!.missing!.first).toBe('000000020000000000000006');
    const p = ok(plan(b, { type: 'latest' }, { timeline: 2 }));
    expect(p.settings.recovery_target_lsn).toBe(`'${formatLsn(L(5, 0xfff000))}'`);
    expect(p.notes.join(' ')).toMatch(/pinned with recovery_target_lsn/);
    expect(p.notes.join(' ')).toMatch(/segment 000000020000000000000006 is missing/);
  });

  it('treats a timeline whose history file is missing as having no ancestors', () => {
    const b = new ArchiveBuilder().segs(1, 1, 5).segs(2, 6, 8);
    b.backup('b1', L(2, 0x28), L(2, 0x1e8), T(2));
    b.xact(2, L(7, 0x100), T(7));
    const r = computeRanges(b.input(), T(9));
    expect(r.timelines[1]!.windows).toEqual([]);
    expect(r.timelines[1]!.notes[0]).toMatch(/history file of timeline 2 is not archived/);
  });
});
