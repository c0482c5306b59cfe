/**
 * What the recovery planner knows about an archive: its input model (filled from the catalog by
 * catalog-input.ts, or from plain lists in tests: the *FromList sources). Units: LSNs are byte
 * positions (numbers), times are microseconds since the Unix epoch.
 */
export type { XactKind, XactRecord, RestorePointRecord } from '../wal/archived-events.js';
import type { XactRecord, RestorePointRecord } from '../wal/archived-events.js';

/** Counts and times of the transaction-end records starting in one file. */
export interface XactSummary {
  count: number;
  /** Times of the first and last records in WAL order, and the extremes. */
  firstTime: number;
  lastTime: number;
  minTime: number;
  maxTime: number;
}

/** One archived segment (never a .partial: restore_command is never asked for those). */
export interface SegmentFacts {
  name: string;
  timeline: number;
  segNo: number;
  /** False when the file was archived without its records being read (older walship). */
  scanned: boolean;
  /** Start and end of the last record that ends inside this file; null when none does. */
  lastRecordLsn: number | null;
  lastRecordEndLsn: number | null;
  /** Transaction-end records starting in this file (null when there are none). */
  xacts: XactSummary | null;
}

/** From `<N>.history`: timeline N branched off `parent` at `switchpoint`. */
export interface TimelineFacts {
  timeline: number;
  parent: number;
  switchpoint: number;
}

export interface BackupFacts {
  name: string;
  label: string;
  /** START WAL LOCATION: the redo point replay begins at. */
  startLsn: number;
  /** STOP WAL LOCATION: the end of the BACKUP_END record, where the copy becomes consistent. */
  stopLsn: number;
  startTimeline: number;
  stopTimeline: number;
  startTime: number | null;
  /**
   * A moment at or after the backup ended: walship's own backups record it to the millisecond;
   * for a backup known from its history file, whose STOP TIME has whole seconds, it is the next
   * whole second (catalog-input.ts). Null when unknown (a zone that is not a plain offset).
   */
  stopTime: number | null;
}

/**
 * Consecutive archived segments of one timeline and what their scans say. A source may cut a
 * run of segments into several stretches (the catalog cuts at every 1024th segment).
 */
export interface SegmentStretch {
  timeline: number;
  firstSeg: number;
  lastSeg: number;
  /** How many of its segments were archived without their records being read. */
  unscanned: number;
  /** Its newest transaction time (the largest `xacts.maxTime` of its segments), null when none. */
  maxXactTime: number | null;
}

/** The archived segments, read on demand (the catalog may hold millions). */
export interface SegmentSource {
  /** Every stretch, by timeline then first segment. */
  stretches(): readonly SegmentStretch[];
  /** The archived segments of `timeline` numbered `from` to `to`, ascending. */
  segments(timeline: number, from: number, to: number): readonly SegmentFacts[];
  /** The newest transaction time in segments `from` to `to` of `timeline`, null when none. */
  maxXactTime(timeline: number, from: number, to: number): number | null;
}

/** Fine-grained transaction records, fetched on demand (the catalog may hold millions). */
export interface XactSource {
  /** The records starting in this file, in LSN order. */
  inSegment(timeline: number, segNo: number): readonly XactRecord[];
  /** Every record of this transaction id, any file, in LSN order. */
  withXid(xid: number): readonly XactRecord[];
}

export interface PlannerInput {
  segSize: number;
  segments: SegmentSource;
  timelines: readonly TimelineFacts[];
  backups: readonly BackupFacts[];
  restorePoints: readonly RestorePointFacts[];
  xacts: XactSource;
  /** Segments archive-push acknowledged without archiving them (push_queue_max). */
  dropped?: readonly DroppedFacts[];
}

export interface DroppedFacts {
  timeline: number;
  segNo: number;
  /** When, ISO 8601, and why (the repository's error). */
  at: string;
  reason: string;
}
export type RestorePointFacts = RestorePointRecord;

/** Builds the per-segment summaries and an XactSource from plain lists (tests, small archives). */
export function xactSourceFromList(records: readonly XactRecord[]): XactSource {
  const bySeg = new Map<string, XactRecord[]>();
  const byXid = new Map<number, XactRecord[]>();
  const sorted = [...records].sort((a, b) => a.lsn - b.lsn);
  for (const r of sorted) {
    const k = `${r.timeline}:${r.segNo}`;
    (bySeg.get(k) ?? bySeg.set(k, []).get(k)!).push(r);
    (byXid.get(r.xid) ?? byXid.set(r.xid, []).get(r.xid)!).push(r);
  }
  return {
    inSegment: (tl, seg) => bySeg.get(`${tl}:${seg}`) ?? [],
    withXid: (xid) => byXid.get(xid) ?? [],
  };
}

/**
 * A SegmentSource over a plain list (tests, small archives). With `cutEvery`, stretches are cut
 * at every multiple of it, as the catalog cuts them at every 1024th segment.
 */
export function segmentSourceFromList(segments: readonly SegmentFacts[], cutEvery?: number): SegmentSource {
  const byTl = new Map<number, SegmentFacts[]>();
  for (const s of segments) (byTl.get(s.timeline) ?? byTl.set(s.timeline, []).get(s.timeline)!).push(s);
  const stretches: SegmentStretch[] = [];
  for (const tl of [...byTl.keys()].sort((a, b) => a - b)) {
    let cur: SegmentStretch | undefined;
    for (const s of byTl.get(tl)!.sort((a, b) => a.segNo - b.segNo)) {
      if (!cur || s.segNo !== cur.lastSeg + 1 || (cutEvery !== undefined && s.segNo % cutEvery === 0)) {
        stretches.push((cur = { timeline: tl, firstSeg: s.segNo, lastSeg: s.segNo, unscanned: 0, maxXactTime: null }));
      }
      cur.lastSeg = s.segNo;
      if (!s.scanned) cur.unscanned++;
      if (s.xacts && (cur.maxXactTime === null || s.xacts.maxTime > cur.maxXactTime)) cur.maxXactTime = s.xacts.maxTime;
    }
  }
  const inRange = (tl: number, from: number, to: number) => (byTl.get(tl) ?? []).filter((s) => s.segNo >= from && s.segNo <= to);
  return {
    stretches: () => stretches,
    segments: inRange,
    maxXactTime(tl, from, to) {
      let m: number | null = null;
      for (const s of inRange(tl, from, to)) if (s.xacts && (m === null || s.xacts.maxTime > m)) m = s.xacts.maxTime;
      return m;
    },
  };
}

export function summarize(records: readonly XactRecord[]): XactSummary | null {
  if (records.length === 0) return null;
  const sorted = [...records].sort((a, b) => a.lsn - b.lsn);
  let min = Infinity;
  let max = -Infinity;
  for (const r of sorted) {
    if (r.time < min) min = r.time;
    if (r.time > max) max = r.time;
  }
  return { count: sorted.length, firstTime: sorted[0]!.time, lastTime: sorted[sorted.length - 1]!.time, minTime: min, maxTime: max };
}
