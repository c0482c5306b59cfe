/**
 * The expire plan on hand-built archives: which backups a policy keeps, newest by completion
 * across timelines (never by LSN); that nothing goes without a restorable backup; unfinished
 * backups keep their WAL until retain_incomplete; a window keeps the newest backup consistent
 * before it; and the kept windows are the same before and after.
 */
import { describe, expect, it } from 'vitest';
import { planExpire, segmentsFrom, type BackupEntry, type RetentionPolicy } from '../src/expire/plan.js';
import { computeRanges } from '../src/recovery/ranges.js';
import { formatIso } from '../src/time.js';
import { segmentSourceFromList } from '../src/recovery/input.js';
import { ArchiveBuilder, L, T } from './helpers/archive-builder.js';

const policy = (p: Partial<RetentionPolicy>): RetentionPolicy => ({ full: null, windowSeconds: null, walBeforeOldest: false, incompleteSeconds: 7 * 86400, ...p });
const NOW = T(600);
/** Names as the plan gives them, without the builder's `.backup`. */
const names = (xs: readonly { name: string }[]) => xs.map((x) => x.name.replace(/\.backup$/, ''));

/** Timeline 1, segments 1..40; walship backups a (seg 2), b (seg 10), c (seg 20), a commit per segment. */
function three(): { arch: ArchiveBuilder; entries: BackupEntry[] } {
  const arch = new ArchiveBuilder().segs(1, 1, 40);
  for (let s = 1; s <= 40; s++) arch.xact(1, L(s, 0x1000), T(s));
  const entries: BackupEntry[] = [];
  for (const [name, seg] of [['a', 2], ['b', 10], ['c', 20]] as const) {
    arch.backup(name, L(seg, 0x28), L(seg, 0x800), T(seg, 1));
    entries.push({ name: `${name}.backup`, source: 'walship', status: 'complete', label: name, startLsn: L(seg, 0x28), stopLsn: L(seg, 0x800), startTime: formatIso(T(seg)), stopTime: formatIso(T(seg, 1)) });
  }
  return { arch, entries };
}

describe('expire plan', () => {
  it('by count keeps the newest N and cuts the WAL at the oldest kept backup; the window it keeps is unchanged', () => {
    const { arch, entries } = three();
    const p = planExpire(arch.input(), entries, policy({ full: 2 }), NOW);
    expect(names(p.kept)).toEqual(['c', 'b']);
    expect(names(p.removed)).toEqual(['a']);
    expect(p.walBelowSeg).toBe(10);
    const w = p.after.timelines[0]!.windows;
    expect(w).toHaveLength(1);
    expect(w[0]!.backup.name).toBe('b.backup');
    expect(w[0]!.wal[0]!.first).toBe('00000001000000000000000A');
  });

  it('orders backups by when they completed, not by LSN: a timeline branched into the past keeps its newer backups', () => {
    const { arch, entries } = three();
    // Timeline 2 branched off segment 5 (a restore into the past), with backup d in segment 6, after c.
    arch.fork(2, 1, L(5, 0x2000)).segs(2, 5, 12);
    for (let s = 6; s <= 12; s++) arch.xact(2, L(s, 0x1000), T(100 + s));
    arch.backup('d', L(6, 0x28), L(6, 0x800), T(106, 1), 2);
    entries.push({ name: 'd.backup', source: 'walship', status: 'complete', label: 'd', startLsn: L(6, 0x28), stopLsn: L(6, 0x800), startTime: formatIso(T(106)), stopTime: formatIso(T(106, 1)) });
    const p = planExpire(arch.input(), entries, policy({ full: 1 }), NOW);
    expect(names(p.kept)).toEqual(['d']);
    expect(names(p.removed).sort()).toEqual(['a', 'b', 'c']);
    expect(p.walBelowSeg).toBe(6);
    expect(p.after.timelines.find((t) => t.timeline === 2)!.windows[0]!.backup.name).toBe('d.backup');
  });

  it('removes nothing while no backup is restorable (a new repository), but old failed backups go', () => {
    const arch = new ArchiveBuilder().segs(1, 1, 10);
    const failed: BackupEntry = { name: 'f', source: 'walship', status: 'failed', label: 'f', startLsn: L(2), stopLsn: L(2), startTime: formatIso(T(0) - 8 * 86400e6), stopTime: null };
    const p = planExpire(arch.input(), [failed], policy({ full: 1 }), NOW);
    expect(p.walBelowSeg).toBeNull();
    expect(names(p.removed)).toEqual(['f']);
    expect(p.notes.join(' ')).toMatch(/no restorable walship backup/);
  });

  it('an unfinished backup younger than retain_incomplete keeps the WAL from its start; an older one goes', () => {
    const { arch, entries } = three();
    const running: BackupEntry = { name: 'r', source: 'walship', status: 'running', label: 'r', startLsn: L(4, 0x28), stopLsn: L(4, 0x28), startTime: formatIso(NOW - 3600e6), stopTime: null };
    const p = planExpire(arch.input(), [...entries, running], policy({ full: 1 }), NOW);
    expect(p.walBelowSeg).toBe(4);
    expect(names(p.removed)).toEqual(['b', 'a']);
    const stale = { ...running, startTime: formatIso(NOW - 8 * 86400e6) };
    const q = planExpire(arch.input(), [...entries, stale], policy({ full: 1 }), NOW);
    expect(q.walBelowSeg).toBe(20);
    expect(names(q.removed)).toContain('r');
  });

  it('by window keeps the newest backup consistent before its start, and everything newer', () => {
    const { arch, entries } = three();
    // Consistency times: a at T(2,1), b at T(10,1), c at T(20,1). A window reaching back to T(15).
    const p = planExpire(arch.input(), entries, policy({ windowSeconds: (600 - 15) * 60 }), NOW);
    expect(names(p.kept)).toEqual(['c', 'b']);
    expect(p.walBelowSeg).toBe(10);
    // Combined with a count that keeps more: whichever keeps more wins.
    expect(planExpire(arch.input(), entries, policy({ windowSeconds: (600 - 15) * 60, full: 3 }), NOW).removed).toEqual([]);
    // A window older than every backup: everything kept, and said.
    const all = planExpire(arch.input(), entries, policy({ windowSeconds: 600 * 60 }), NOW);
    expect(all.removed).toEqual([]);
    expect(all.notes.join(' ')).toMatch(/window is not covered/);
  });

  it('keeps the WAL with retain_wal_before_oldest, removing the backup history file of a removed backup', () => {
    const { arch, entries } = three();
    entries.push({ name: '000000010000000000000002.00000028.backup', source: 'history-file', status: 'complete', label: 'a', startLsn: L(2, 0x28), stopLsn: L(2, 0x800), startTime: null, stopTime: formatIso(T(2, 1)) });
    const p = planExpire(arch.input(), entries, policy({ full: 2, walBeforeOldest: true }), NOW);
    expect(p.walBelowSeg).toBeNull();
    expect(p.removedFiles).toEqual(['000000010000000000000002.00000028.backup']);
  });

  it('refuses without a policy', () => {
    const { arch, entries } = three();
    expect(() => planExpire(arch.input(), entries, policy({}), NOW)).toThrow(/no retention policy/);
  });

  it('segmentsFrom clips stretches, segments and times at the cut', () => {
    const src = segmentSourceFromList(
      [3, 4, 5, 6].map((s) => ({ name: `s${s}`, timeline: 1, segNo: s, scanned: s !== 4, lastRecordLsn: null, lastRecordEndLsn: null, xacts: { count: 1, firstTime: s, lastTime: s, minTime: s, maxTime: s } })),
    );
    const cut = segmentsFrom(src, 5);
    expect(cut.stretches()).toEqual([{ timeline: 1, firstSeg: 5, lastSeg: 6, unscanned: 0, maxXactTime: 6 }]);
    expect(cut.segments(1, 0, 10).map((s) => s.segNo)).toEqual([5, 6]);
    expect(cut.maxXactTime(1, 0, 4)).toBeNull();
    expect(segmentsFrom(src, 4).stretches()[0]!.unscanned).toBe(1);
  });
});

describe('consistency time', () => {
  it('counts only transactions replayed before consistency: a later-stamped commit before the start does not raise it', () => {
    const arch = new ArchiveBuilder().segs(1, 1, 10);
    arch.xact(1, L(1, 0x1000), T(50)); // a clock that ran ahead, before the backup's start
    arch.xact(1, L(3, 0x100), T(9, 30)); // during the backup
    arch.backup('b', L(3, 0x28), L(3, 0x1e8), T(10));
    for (let s = 4; s <= 10; s++) arch.xact(1, L(s, 0x1000), T(50 + s));
    const w = computeRanges(arch.input(), NOW).timelines[0]!.windows[0]!;
    expect(w.earliest.time).toBe(formatIso(T(10)));
  });
});
