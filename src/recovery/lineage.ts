/**
 * What recovery along one timeline reads (Lineage): its ancestry, the archived segments it reads
 * from each ancestor, the runs of them without a gap, and which backups can start it. The
 * timeline arithmetic shared by `ranges` and `plan`, over the archive as a whole (ArchiveView,
 * archive-view.ts). Pure: no I/O.
 *
 * Units: LSNs are byte positions (numbers), times are microseconds since the Unix epoch.
 *
 * How PostgreSQL reads WAL along a timeline (xlogrecovery.c; docs/wal-format.md, "How recovery reads along timelines"):
 * timeline N's history is a list of ancestors, each valid from the switchpoint that created it
 * up to the switchpoint of its child. LSN x belongs to the ancestor whose [begin, end) holds x.
 * Segment k is read from the newest timeline of the lineage whose begin segment is <= k, so the
 * segment holding a switchpoint is read from the child's copy.
 */
import { formatLsn as hexLsn, historyName, segmentName as segName } from '../wal/names.js';
import type { BackupFacts, RestorePointRecord, SegmentFacts, XactRecord } from './input.js';
import { firstEndingAtOrAfter, pagedSegments, type ArchiveView } from './archive-view.js';

export interface LineageEntry {
  timeline: number;
  /** [begin, end): the LSNs this timeline contributes to the lineage. */
  begin: number;
  end: number;
}

/**
 * A stretch as a lineage reads it: clipped to the segments the lineage reads from its timeline.
 */
export interface LineagePiece {
  timeline: number;
  firstSeg: number;
  lastSeg: number;
  /** How many of its segments were not scanned; null when unknown (some, in a clipped stretch). */
  unscanned: number | null;
  /** Its newest transaction time, null when none. */
  maxXactTime: number | null;
}

/** True when none of the piece's segments was scanned (none knows where its records end). */
export const allUnscanned = (p: LineagePiece): boolean => p.unscanned === p.lastSeg - p.firstSeg + 1;

/** A maximal stretch of consecutive segments present along a lineage. */
export interface Run {
  firstSeg: number;
  lastSeg: number;
  /** Index range in Lineage.pieces. */
  from: number;
  to: number;
  /** End of the last complete record in the run (how far replay can go). */
  endLsn: number;
  /** Start of the last complete record in the run, null when unknown. */
  lastRecordLsn: number | null;
}

export interface UsableBackup {
  backup: BackupFacts;
  run: Run;
  /**
   * The earliest time target this backup can serve: its stop time, raised to the newest
   * transaction time replayed before its consistency point, i.e. from its start (redo) location
   * to its stop location (null when neither is known).
   */
  consistentTime: number | null;
  /** Newest transaction time replayed before the consistency point (for exclusive targets). */
  maxXactBefore: number | null;
}

export interface UnusableBackup {
  backup: BackupFacts;
  reason: string;
}

const lineages = new WeakMap<ArchiveView, Map<number, Lineage>>();

/** The lineage of `timeline` in `view` (made once per view and timeline). */
export function lineageOf(view: ArchiveView, timeline: number): Lineage {
  let byTl = lineages.get(view);
  if (!byTl) lineages.set(view, (byTl = new Map()));
  let l = byTl.get(timeline);
  if (!l) byTl.set(timeline, (l = new Lineage(view, timeline)));
  return l;
}

export class Lineage {
  /** Oldest first; the last entry is the timeline itself, open-ended. */
  readonly entries: LineageEntry[];
  /** The archived segments recovery on this timeline reads, as pieces of stretches, ascending. */
  readonly pieces: LineagePiece[];
  readonly runs: Run[];
  readonly usable: UsableBackup[];
  readonly unusable: UnusableBackup[];
  /** True when an ancestor's history file is missing (the lineage is cut there). */
  readonly incomplete: boolean;
  /** The segment numbers [lo, hi] read from each entry's timeline, ascending (some empty). */
  private readonly segRanges: { timeline: number; lo: number; hi: number }[];
  /** Newest transaction time in pieces 0..i (-Infinity: none). */

  constructor(
    readonly view: ArchiveView,
    readonly timeline: number,
  ) {
    // Ancestry, newest first, by following each timeline's parent.
    const chain: { timeline: number; begin: number }[] = [];
    let tl = timeline;
    let incomplete = false;
    const seen = new Set<number>();
    for (;;) {
      seen.add(tl);
      const f = view.timelineFacts(tl);
      if (!f || seen.has(f.parent) || f.parent >= tl) {
        if (!f && tl !== 1) incomplete = true;
        chain.push({ timeline: tl, begin: 0 });
        break;
      }
      chain.push({ timeline: tl, begin: f.switchpoint });
      tl = f.parent;
    }
    chain.reverse();
    this.entries = chain.map((c, i) => {
      const next = chain[i + 1];
      const end = next ? next.begin : Infinity;
      return { timeline: c.timeline, begin: Math.min(c.begin, end), end };
    });
    this.incomplete = incomplete;

    // The designated copy of each segment: the newest entry whose begin segment is <= segNo.
    this.segRanges = this.entries.map((e, i) => ({
      timeline: e.timeline,
      lo: i === 0 ? 0 : view.segOf(e.begin),
      hi: Math.min(Infinity, ...this.entries.slice(i + 1).map((n) => view.segOf(n.begin) - 1)),
    }));
    const src = view.input.segments;
    this.pieces = [];
    for (const r of this.segRanges) {
      for (const s of view.stretchesOf(r.timeline)) {
        const firstSeg = Math.max(s.firstSeg, r.lo);
        const lastSeg = Math.min(s.lastSeg, r.hi);
        if (firstSeg > lastSeg) continue;
        const whole = firstSeg === s.firstSeg && lastSeg === s.lastSeg;
        this.pieces.push({
          timeline: r.timeline,
          firstSeg,
          lastSeg,
          unscanned: whole || s.unscanned === 0 ? s.unscanned : null,
          maxXactTime: whole || s.maxXactTime === null ? s.maxXactTime : src.maxXactTime(r.timeline, firstSeg, lastSeg),
        });
      }
    }

    this.runs = [];
    for (let i = 0; i < this.pieces.length; ) {
      let j = i;
      while (j + 1 < this.pieces.length && this.pieces[j + 1]!.firstSeg === this.pieces[j]!.lastSeg + 1) j++;
      this.runs.push(this.makeRun(i, j));
      i = j + 1;
    }

    this.usable = [];
    this.unusable = [];
    const backups = [...view.input.backups].sort((a, b) => a.stopLsn - b.stopLsn || a.name.localeCompare(b.name));
    for (const b of backups) {
      if (!this.holdsBackup(b)) continue;
      const run = this.runAt(view.segOf(b.startLsn));
      const lastSeg = view.segOf(Math.max(b.stopLsn - 1, b.startLsn));
      if (!run || run.lastSeg < lastSeg || run.endLsn < b.stopLsn) {
        const missing = this.firstMissing(view.segOf(b.startLsn), lastSeg);
        this.unusable.push({
          backup: b,
          reason:
            missing !== null
              ? `segment ${this.designatedName(missing)} of the WAL it needs (start ${hexLsn(b.startLsn)} to stop ${hexLsn(b.stopLsn)}) is not archived`
              : `the WAL up to its stop location ${hexLsn(b.stopLsn)} is not complete in the archive`,
        });
        continue;
      }
      // Replay starts at the backup's redo point: records before it are never replayed, so
      // only those from there to the consistency point can stop recovery before it.
      const before = this.maxXactTimeBetween(b.startLsn, b.stopLsn);
      const candidates = [b.stopTime, before].filter((x): x is number => x !== null);
      this.usable.push({
        backup: b,
        run,
        consistentTime: candidates.length > 0 ? Math.max(...candidates) : null,
        maxXactBefore: before,
      });
    }
  }

  private makeRun(from: number, to: number): Run {
    const firstSeg = this.pieces[from]!.firstSeg;
    const lastSeg = this.pieces[to]!.lastSeg;
    let endLsn: number | null = null;
    let lastRecordLsn: number | null = null;
    for (const s of this.segments(firstSeg, lastSeg, { desc: true })) {
      if (!s.scanned) {
        endLsn = (s.segNo + 1) * this.view.segSize; // assume a complete segment
        break;
      }
      if (s.lastRecordEndLsn !== null) {
        endLsn = s.lastRecordEndLsn;
        lastRecordLsn = s.lastRecordLsn;
        break;
      }
    }
    if (lastRecordLsn === null) {
      for (const s of this.segments(firstSeg, lastSeg, { desc: true, skip: allUnscanned })) {
        if ((lastRecordLsn = s.lastRecordLsn) !== null) break;
      }
    }
    return { firstSeg, lastSeg, from, to, endLsn: endLsn ?? firstSeg * this.view.segSize, lastRecordLsn };
  }

  /**
   * The archived segments this lineage reads from `from` to `to`, in order (descending with
   * `desc`), fetched a page at a time; the pieces `skip` says have none wanted are passed over.
   */
  *segments(from: number, to: number, opts: { desc?: boolean; skip?: (p: LineagePiece) => boolean } = {}): Generator<SegmentFacts> {
    const ids: number[] = [];
    for (let i = firstEndingAtOrAfter(this.pieces, from); i < this.pieces.length && this.pieces[i]!.firstSeg <= to; i++) ids.push(i);
    if (opts.desc) ids.reverse();
    for (const i of ids) {
      const p = this.pieces[i]!;
      if (opts.skip?.(p)) continue;
      yield* pagedSegments(this.view.input.segments, p.timeline, Math.max(from, p.firstSeg), Math.min(to, p.lastSeg), opts.desc);
    }
  }

  /** Which timeline's copy of segment `segNo` recovery on this lineage reads. */
  fileTimeline(segNo: number): number {
    for (let i = this.entries.length - 1; i > 0; i--) {
      if (this.view.segOf(this.entries[i]!.begin) <= segNo) return this.entries[i]!.timeline;
    }
    return this.entries[0]!.timeline;
  }

  designatedName(segNo: number): string {
    return segName(this.fileTimeline(segNo), segNo, this.view.segSize);
  }

  /** The segments of the gap [from, to] that push_queue_max dropped: how many, the first drop's time and reason; null: none. */
  droppedIn(from: number, to: number): { count: number; at: string; reason: string } | null {
    const hits = (this.view.input.dropped ?? []).filter((d) => d.segNo >= from && d.segNo <= to && d.timeline === this.fileTimeline(d.segNo));
    if (hits.length === 0) return null;
    const first = hits.reduce((a, b) => (b.at < a.at ? b : a));
    return { count: hits.length, at: first.at, reason: first.reason };
  }

  /** "segment X is missing" / "segments X..Y are missing" for the gap [from, to], saying so when push_queue_max dropped them. */
  missingText(from: number, to: number): string {
    const what = from === to ? `segment ${this.designatedName(from)} is missing` : `segments ${this.designatedName(from)}..${this.designatedName(to)} are missing`;
    const d = this.droppedIn(from, to);
    if (!d) return what;
    const which = d.count === to - from + 1 ? (from === to ? 'it' : 'them') : `${d.count} of them`;
    return `${what} (archive-push dropped ${which} under push_queue_max from ${d.at}, the repository failing: ${d.reason})`;
  }

  /** The timeline LSN `lsn` belongs to on this lineage. */
  timelineAt(lsn: number): number {
    for (const e of this.entries) if (lsn >= e.begin && lsn < e.end) return e.timeline;
    return this.entries[this.entries.length - 1]!.timeline;
  }

  /** Whether `tl` is this timeline or one of its ancestors. */
  includes(tl: number): boolean {
    return this.entries.some((e) => e.timeline === tl);
  }

  /** True when a backup taken on the given timelines at these LSNs is part of this history. */
  holdsBackup(b: BackupFacts): boolean {
    return this.timelineAt(b.startLsn) === b.startTimeline && this.timelineAt(Math.max(b.stopLsn - 1, b.startLsn)) === b.stopTimeline;
  }

  /** True when an archived record in file (timeline, segNo) is on this lineage's path. */
  reads(timeline: number, segNo: number): boolean {
    return this.fileTimeline(segNo) === timeline;
  }

  /** Whether segment `segNo`, as this lineage reads it, is archived. */
  has(segNo: number): boolean {
    const p = this.pieces[firstEndingAtOrAfter(this.pieces, segNo)];
    return p !== undefined && p.firstSeg <= segNo;
  }

  runAt(segNo: number): Run | undefined {
    return this.runs.find((r) => r.firstSeg <= segNo && segNo <= r.lastSeg);
  }

  /** The first segment number in [from, to] that is missing, or null. */
  firstMissing(from: number, to: number): number | null {
    let next = from;
    for (let i = firstEndingAtOrAfter(this.pieces, from); i < this.pieces.length && next <= to; i++) {
      if (this.pieces[i]!.firstSeg > next) return next;
      next = this.pieces[i]!.lastSeg + 1;
    }
    return next <= to ? next : null;
  }

  /** The run after `run`, if any (WAL that exists beyond a gap). */
  runAfter(run: Run): Run | undefined {
    return this.runs[this.runs.indexOf(run) + 1];
  }

  /** Newest time of the records in segment `segNo` of `p` that `which` selects (-Infinity: none). */
  private newestIn(p: LineagePiece, segNo: number, which: (r: XactRecord) => boolean): number {
    let m = -Infinity;
    if (p.maxXactTime === null || !this.view.input.segments.segments(p.timeline, segNo, segNo)[0]?.xacts) return m;
    for (const r of this.view.input.xacts.inSegment(p.timeline, segNo)) if (which(r) && r.time > m) m = r.time;
    return m;
  }

  /** Newest transaction time among records that start in [fromLsn, beforeLsn) on this lineage. */
  maxXactTimeBetween(fromLsn: number, beforeLsn: number): number | null {
    const a = this.view.segOf(fromLsn);
    const b = this.view.segOf(beforeLsn);
    let m = -Infinity;
    for (let i = firstEndingAtOrAfter(this.pieces, a); i < this.pieces.length && this.pieces[i]!.firstSeg <= b; i++) {
      const p = this.pieces[i]!;
      if (p.maxXactTime === null) continue;
      const lo = Math.max(p.firstSeg, a);
      const hi = Math.min(p.lastSeg, b);
      // Whole segments strictly between the two ends, then the records of the end segments.
      const inLo = lo === a ? lo + 1 : lo;
      const inHi = hi === b ? hi - 1 : hi;
      if (inLo <= inHi) m = Math.max(m, this.view.input.segments.maxXactTime(p.timeline, inLo, inHi) ?? -Infinity);
      if (lo === a) m = Math.max(m, this.newestIn(p, a, (r) => r.lsn >= fromLsn && r.lsn < beforeLsn));
      if (hi === b && b !== a) m = Math.max(m, this.newestIn(p, b, (r) => r.lsn < beforeLsn));
    }
    return m === -Infinity ? null : m;
  }

  /**
   * The first transaction-end record at or after `fromLsn` (in WAL order, within segments
   * [seg(fromLsn), untilSeg]) that satisfies `pred`. `maxPred` tells from a segment's (or a
   * piece's) newest time whether it can hold one. Stops at a missing or unscanned segment.
   */
  findXact(
    fromLsn: number,
    untilSeg: number,
    pred: (r: XactRecord) => boolean,
    maxPred: (maxTime: number) => boolean,
  ): { found: XactRecord } | { unscanned: SegmentFacts } | { missing: number } | null {
    let next = this.view.segOf(fromLsn);
    for (let i = firstEndingAtOrAfter(this.pieces, next); i < this.pieces.length && next <= untilSeg; i++) {
      const p = this.pieces[i]!;
      if (p.firstSeg > next) return { missing: next };
      const last = Math.min(p.lastSeg, untilSeg);
      if (p.unscanned !== 0 || (p.maxXactTime !== null && maxPred(p.maxXactTime))) {
        for (const s of pagedSegments(this.view.input.segments, p.timeline, next, last)) {
          if (!s.scanned) return { unscanned: s };
          if (!s.xacts || !maxPred(s.xacts.maxTime)) continue;
          for (const r of this.view.input.xacts.inSegment(s.timeline, s.segNo)) {
            if (r.lsn >= fromLsn && pred(r)) return { found: r };
          }
        }
      }
      next = last + 1;
    }
    return next <= untilSeg ? { missing: next } : null;
  }

  /** Newest transaction time among records starting at or after `fromLsn` inside `run`. */
  maxXactTimeFrom(fromLsn: number, run: Run): number | null {
    const first = this.view.segOf(fromLsn);
    let m = -Infinity;
    for (let k = run.from; k <= run.to; k++) {
      const p = this.pieces[k]!;
      if (p.lastSeg < first || p.maxXactTime === null) continue;
      if (p.firstSeg > first) {
        m = Math.max(m, p.maxXactTime);
        continue;
      }
      if (p.lastSeg > first) m = Math.max(m, this.view.input.segments.maxXactTime(p.timeline, first + 1, p.lastSeg) ?? -Infinity);
      m = Math.max(m, this.newestIn(p, first, (r) => r.lsn >= fromLsn));
    }
    return m === -Infinity ? null : m;
  }

  /** The last transaction-end record that starts in [fromLsn, beforeLsn), or null. */
  lastXactBetween(fromLsn: number, beforeLsn: number): XactRecord | null {
    const noXacts = (p: LineagePiece) => p.maxXactTime === null;
    for (const s of this.segments(this.view.segOf(fromLsn), this.view.segOf(beforeLsn - 1), { desc: true, skip: noXacts })) {
      if (!s.xacts) continue;
      const recs = this.view.input.xacts.inSegment(s.timeline, s.segNo);
      for (let i = recs.length - 1; i >= 0; i--) {
        const r = recs[i]!;
        if (r.lsn < beforeLsn && r.lsn >= fromLsn) return r;
      }
    }
    return null;
  }

  /** Restore points recovery on this lineage passes, in LSN order. */
  restorePoints(): RestorePointRecord[] {
    return this.view.input.restorePoints.filter((r) => this.reads(r.timeline, r.segNo)).sort((a, b) => a.lsn - b.lsn);
  }

  /** Transaction-end records of `xid` on this lineage, in LSN order. */
  xactsOf(xid: number): XactRecord[] {
    return this.view.input.xacts
      .withXid(xid)
      .filter((r) => this.reads(r.timeline, r.segNo) && this.has(r.segNo))
      .sort((a, b) => a.lsn - b.lsn);
  }

  /** The WAL files recovery reads from `fromSeg` to `toSeg`, grouped by file timeline. */
  segmentRanges(fromSeg: number, toSeg: number): { timeline: number; first: string; last: string; count: number }[] {
    const out: { timeline: number; first: string; last: string; count: number }[] = [];
    for (const r of this.segRanges) {
      const firstSeg = Math.max(fromSeg, r.lo);
      const lastSeg = Math.min(toSeg, r.hi);
      if (firstSeg <= lastSeg) out.push(this.rangeOut({ timeline: r.timeline, firstSeg, lastSeg }));
    }
    return out;
  }

  private rangeOut(c: { timeline: number; firstSeg: number; lastSeg: number }) {
    const ss = this.view.segSize;
    return { timeline: c.timeline, first: segName(c.timeline, c.firstSeg, ss), last: segName(c.timeline, c.lastSeg, ss), count: c.lastSeg - c.firstSeg + 1 };
  }

  /** History files recovery on this timeline reads (every timeline after the first). */
  historyFiles(): string[] {
    return this.entries.filter((e) => e.timeline > 1).map((e) => historyName(e.timeline));
  }
}
