/** The drill's pure parts: the random target drawn from ranges, and the verdict on what recovery reached. */
import { describe, expect, it } from 'vitest';
import { pickRandomTarget } from '../src/drill/target.js';
import { judgeReached, verdictOf } from '../src/drill/judge.js';
import type { RangesReport, WindowOut } from '../src/recovery/ranges.js';
import type { Plan } from '../src/recovery/plan.js';

const win = (from: string, before: string): WindowOut => ({ timeTargets: { from, before } }) as WindowOut;
const report = (timelines: [number, WindowOut[]][]): RangesReport =>
  ({ now: '2026-12-01T00:00:00Z', archiveLag: null, timelines: timelines.map(([timeline, windows]) => ({ timeline, windows })) }) as unknown as RangesReport;

describe('pickRandomTarget', () => {
  const r = report([
    [1, [win('2026-11-30T00:00:00Z', '2026-11-30T00:00:10Z'), { timeTargets: null } as WindowOut]],
    [2, [win('2026-11-30T01:00:00Z', '2026-11-30T01:00:30Z')]],
  ]);
  it('draws from every window with time targets, weighted by length, never at a window\'s exclusive end', () => {
    expect(pickRandomTarget(r, () => 0)).toMatchObject({ timeline: 1, iso: '2026-11-30T00:00:00Z' });
    // 10 s of 40 are timeline 1's: a draw past a quarter lands on timeline 2.
    expect(pickRandomTarget(r, () => 0.25)).toMatchObject({ timeline: 2, iso: '2026-11-30T01:00:00Z' });
    expect(pickRandomTarget(r, () => 0.5)).toMatchObject({ timeline: 2, iso: '2026-11-30T01:00:10Z' });
    const last = pickRandomTarget(r, () => 0.9999999999)!;
    expect(last.timeline).toBe(2);
    expect(last.time).toBe(Date.parse('2026-11-30T01:00:30Z') * 1000 - 1);
  });
  it('draws nothing when no window has a time target', () => {
    expect(pickRandomTarget(report([[1, [{ timeTargets: null } as WindowOut]]]), () => 0.5)).toBeNull();
    expect(pickRandomTarget(report([]), () => 0.5)).toBeNull();
  });
});

describe('judgeReached', () => {
  const plan = (exact: boolean, time: string | null): Plan =>
    ({ timeline: 1, replayed: { exact, lastXact: time === null ? null : { xid: 900, time, lsn: '0/3000100' } } }) as Plan;
  const reached = (lastXactTime: string | null, parentTimeline: number | null = 1) => ({ timeline: 2, parentTimeline, lastXactTime, replayLsn: '0/3000200' });

  it('passes when the server replayed exactly the promised transaction, along the promised timeline', () => {
    const c = judgeReached(plan(true, '2026-11-30T00:00:01.5Z'), reached('2026-11-30T00:00:01.500000Z'));
    expect(c.map((x) => x.ok)).toEqual([true, true]);
    expect(verdictOf(c)).toBe('passed');
  });
  it('fails on a different last transaction, one more or one fewer, or none', () => {
    expect(judgeReached(plan(true, '2026-11-30T00:00:01.5Z'), reached('2026-11-30T00:00:01.500001Z'))[1]!.ok).toBe(false);
    expect(judgeReached(plan(true, '2026-11-30T00:00:01.5Z'), reached(null))[1]!.ok).toBe(false);
    expect(judgeReached(plan(true, null), reached('2026-11-30T00:00:01Z'))[1]!.ok).toBe(false);
    expect(judgeReached(plan(true, null), reached(null))[1]!.ok).toBe(true);
  });
  it('accepts later transactions only where the plan says recovery may go further', () => {
    expect(judgeReached(plan(false, '2026-11-30T00:00:01Z'), reached('2026-11-30T00:00:05Z'))[1]!.ok).toBe(true);
    expect(judgeReached(plan(false, '2026-11-30T00:00:01Z'), reached('2026-11-30T00:00:00.9Z'))[1]!.ok).toBe(false);
    expect(judgeReached(plan(false, '2026-11-30T00:00:01Z'), reached(null))[1]!.ok).toBe(false);
  });
  it('fails when the server branched from another timeline, or did not branch', () => {
    const other = judgeReached(plan(true, null), reached(null, 3));
    expect(other[0]).toMatchObject({ ok: false, detail: 'the server branched from timeline 3; the plan recovers along timeline 1' });
    expect(judgeReached(plan(true, null), reached(null, null))[0]!.ok).toBe(false);
    expect(verdictOf(other)).toBe('failed');
    expect(verdictOf([])).toBe('failed');
  });
});
