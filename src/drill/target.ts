/**
 * --random-target: a moment drawn from what `ranges` says is recoverable, so that drills over
 * time test the whole window and not only its end. Pure (the random source is a parameter).
 */
import type { RangesReport } from '../recovery/ranges.js';
import { formatIso, isoToMicros } from '../time.js';

export interface RandomTarget {
  /** Microseconds since the epoch; an inclusive time target. */
  time: number;
  timeline: number;
  iso: string;
}

/**
 * A time drawn uniformly from every window's reachable time targets (from ≤ t < before), windows
 * weighted by their length; null when no window has a time target.
 */
export function pickRandomTarget(report: RangesReport, random: () => number): RandomTarget | null {
  const spans: { timeline: number; from: number; length: number }[] = [];
  for (const tl of report.timelines) {
    for (const w of tl.windows) {
      if (!w.timeTargets) continue;
      const from = isoToMicros(w.timeTargets.from);
      const before = isoToMicros(w.timeTargets.before);
      if (from === null || before === null || before <= from) continue;
      spans.push({ timeline: tl.timeline, from, length: before - from });
    }
  }
  const total = spans.reduce((n, s) => n + s.length, 0);
  if (total === 0) return null;
  let at = Math.min(total - 1, Math.floor(random() * total));
  for (const s of spans) {
    if (at < s.length) {
      const time = s.from + at;
      return { time, timeline: s.timeline, iso: formatIso(time) };
    }
    at -= s.length;
  }
  return null;
}
