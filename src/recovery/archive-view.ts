/**
 * The archive as a whole, as the planner sees it (over its input: input.ts): which segments of
 * which timeline are archived, the timelines and their parents, the newest transaction. What
 * recovery along one timeline reads is its Lineage (lineage.ts). Pure: no I/O.
 *
 * Units: LSNs are byte positions (numbers), times are microseconds since the Unix epoch.
 */
import type { PlannerInput, SegmentFacts, SegmentSource, SegmentStretch, TimelineFacts } from './input.js';

/** Index of the first of `list` (ascending, disjoint) that ends at or after `segNo`. */
export function firstEndingAtOrAfter(list: readonly { lastSeg: number }[], segNo: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.lastSeg < segNo) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const PAGE = 64;

/** Segments `from` to `to` of a timeline, fetched a page at a time, ascending or descending. */
export function* pagedSegments(src: SegmentSource, timeline: number, from: number, to: number, desc = false): Generator<SegmentFacts> {
  if (desc) {
    for (let hi = to; hi >= from; hi -= PAGE) {
      const page = src.segments(timeline, Math.max(from, hi - PAGE + 1), hi);
      for (let i = page.length - 1; i >= 0; i--) yield page[i]!;
    }
  } else {
    for (let lo = from; lo <= to; lo += PAGE) yield* src.segments(timeline, lo, Math.min(to, lo + PAGE - 1));
  }
}

export class ArchiveView {
  readonly segSize: number;
  /** By timeline, then first segment. */
  private readonly stretches: SegmentStretch[];
  private readonly stretchesByTl = new Map<number, SegmentStretch[]>();
  private readonly tls = new Map<number, TimelineFacts>();

  constructor(readonly input: PlannerInput) {
    this.segSize = input.segSize;
    this.stretches = [...input.segments.stretches()].sort((a, b) => a.timeline - b.timeline || a.firstSeg - b.firstSeg);
    for (const s of this.stretches) (this.stretchesByTl.get(s.timeline) ?? this.stretchesByTl.set(s.timeline, []).get(s.timeline)!).push(s);
    for (const t of input.timelines) this.tls.set(t.timeline, t);
  }

  /** Whether segment `segNo` of `timeline` is archived. */
  has(timeline: number, segNo: number): boolean {
    const list = this.stretchesOf(timeline);
    const s = list[firstEndingAtOrAfter(list, segNo)];
    return s !== undefined && s.firstSeg <= segNo;
  }

  stretchesOf(timeline: number): readonly SegmentStretch[] {
    return this.stretchesByTl.get(timeline) ?? [];
  }

  /** How many segments were archived without their records being read. */
  unscannedCount(): number {
    return this.stretches.reduce((n, s) => n + s.unscanned, 0);
  }

  /** The newest transaction time, and the first segment (by timeline, then number) holding it. */
  newestXact(): { time: number; segment: SegmentFacts } | null {
    let best: SegmentStretch | undefined;
    let time = -Infinity;
    for (const s of this.stretches) {
      if (s.maxXactTime !== null && s.maxXactTime > time) [best, time] = [s, s.maxXactTime];
    }
    if (!best) return null;
    for (const segment of pagedSegments(this.input.segments, best.timeline, best.firstSeg, best.lastSeg)) {
      if (segment.xacts?.maxTime === time) return { time, segment };
    }
    return null;
  }

  timelineFacts(timeline: number): TimelineFacts | undefined {
    return this.tls.get(timeline);
  }

  /** Every timeline the archive mentions, ascending. */
  timelineIds(): number[] {
    const ids = new Set<number>([...this.stretchesByTl.keys(), ...this.tls.keys()]);
    for (const b of this.input.backups) {
      ids.add(b.startTimeline);
      ids.add(b.stopTimeline);
    }
    return [...ids].sort((a, b) => a - b);
  }

  /** Timelines whose history names `timeline` as their parent. */
  children(timeline: number): TimelineFacts[] {
    return this.input.timelines.filter((t) => t.parent === timeline).sort((a, b) => a.switchpoint - b.switchpoint);
  }

  segOf(lsn: number): number {
    return Math.floor(lsn / this.segSize);
  }
}
