/**
 * What the recovery planner knows about an archive (its input model, filled from the catalog by
 * src/catalog/scan-store.ts or built by hand in tests), and the timeline arithmetic shared by
 * `ranges` and `plan`. Pure: no I/O.
 *
 * Units: LSNs are byte positions (numbers), times are microseconds since the Unix epoch.
 *
 * How PostgreSQL reads WAL along a timeline (xlogrecovery.c, shared/reference/wal-format.md):
 * timeline N's history is a list of ancestors, each valid from the switchpoint that created it
 * up to the switchpoint of its child. LSN x belongs to the ancestor whose [begin, end) holds x.
 * Segment k is read from the newest timeline of the lineage whose begin segment is <= k, so the
 * segment holding a switchpoint is read from the child's copy.
 */
import { formatLsn as hexLsn, historyName, segmentName as segName } from '../wal/names.js';

export type XactKind = 'commit' | 'abort' | 'commit_prepared' | 'abort_prepared';

/** A COMMIT / ABORT (/ _PREPARED) record: what recovery_target_time and _xid compare against. */
export interface XactRecord {
  /** Timeline of the archived file the record was read from (its name's timeline). */
  timeline: number;
  /** Segment number of the file holding the record's first byte. */
  segNo: number;
  lsn: number;
  /** LSN just past the record (it may lie in the next segment). */
  endLsn: number;
  xid: number;
  kind: XactKind;
  /** xact_time, microseconds since the Unix epoch. */
  time: number;
}

export interface RestorePointRecord {
  timeline: number;
  segNo: number;
  lsn: number;
  endLsn: number;
  name: string;
  time: number;
}

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
  /** STOP TIME (seconds precision in PostgreSQL's file); null when its zone was not a plain offset. */
  stopTime: number | null;
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
  segments: readonly SegmentFacts[];
  timelines: readonly TimelineFacts[];
  backups: readonly BackupFacts[];
  restorePoints: readonly RestorePointFacts[];
  xacts: XactSource;
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

// ---------------------------------------------------------------------------------------------

export interface LineageEntry {
  timeline: number;
  /** [begin, end): the LSNs this timeline contributes to the lineage. */
  begin: number;
  end: number;
}

/** A maximal stretch of consecutive segments present along a lineage. */
export interface Run {
  firstSeg: number;
  lastSeg: number;
  /** Index range in Lineage.present. */
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
   * transaction time found before its consistency point (null when neither is known).
   */
  consistentTime: number | null;
  /** Newest transaction time strictly before the consistency point (for exclusive targets). */
  maxXactBefore: number | null;
}

export interface UnusableBackup {
  backup: BackupFacts;
  reason: string;
}

export class ArchiveView {
  readonly segSize: number;
  private readonly segs = new Map<string, SegmentFacts>();
  private readonly segsByTl = new Map<number, SegmentFacts[]>();
  private readonly tls = new Map<number, TimelineFacts>();
  private readonly lineages = new Map<number, Lineage>();

  constructor(readonly input: PlannerInput) {
    this.segSize = input.segSize;
    for (const s of input.segments) {
      this.segs.set(`${s.timeline}:${s.segNo}`, s);
      (this.segsByTl.get(s.timeline) ?? this.segsByTl.set(s.timeline, []).get(s.timeline)!).push(s);
    }
    for (const list of this.segsByTl.values()) list.sort((a, b) => a.segNo - b.segNo);
    for (const t of input.timelines) this.tls.set(t.timeline, t);
  }

  segment(timeline: number, segNo: number): SegmentFacts | undefined {
    return this.segs.get(`${timeline}:${segNo}`);
  }

  segmentsOf(timeline: number): readonly SegmentFacts[] {
    return this.segsByTl.get(timeline) ?? [];
  }

  timelineFacts(timeline: number): TimelineFacts | undefined {
    return this.tls.get(timeline);
  }

  /** Every timeline the archive mentions, ascending. */
  timelineIds(): number[] {
    const ids = new Set<number>([...this.segsByTl.keys(), ...this.tls.keys()]);
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

  lineage(timeline: number): Lineage {
    let l = this.lineages.get(timeline);
    if (!l) this.lineages.set(timeline, (l = new Lineage(this, timeline)));
    return l;
  }
}

export class Lineage {
  /** Oldest first; the last entry is the timeline itself, open-ended. */
  readonly entries: LineageEntry[];
  /** The segments recovery on this timeline reads, present in the archive, ascending. */
  readonly present: SegmentFacts[];
  readonly runs: Run[];
  readonly usable: UsableBackup[];
  readonly unusable: UnusableBackup[];
  /** True when an ancestor's history file is missing (the lineage is cut there). */
  readonly incomplete: boolean;
  private readonly prefixMax: number[];

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
    const present: SegmentFacts[] = [];
    for (let i = 0; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      const lo = i === 0 ? 0 : view.segOf(e.begin);
      const next = this.entries[i + 1];
      const hi = next ? view.segOf(next.begin) - 1 : Infinity;
      for (const s of view.segmentsOf(e.timeline)) if (s.segNo >= lo && s.segNo <= hi) present.push(s);
    }
    present.sort((a, b) => a.segNo - b.segNo);
    this.present = present;

    this.prefixMax = [];
    let m = -Infinity;
    for (const s of present) {
      if (s.xacts && s.xacts.maxTime > m) m = s.xacts.maxTime;
      this.prefixMax.push(m);
    }

    this.runs = [];
    for (let i = 0; i < present.length; ) {
      let j = i;
      while (j + 1 < present.length && present[j + 1]!.segNo === present[j]!.segNo + 1) j++;
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
      const before = this.maxXactTimeBefore(b.stopLsn);
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
    const segSize = this.view.segSize;
    let endLsn: number | null = null;
    let lastRecordLsn: number | null = null;
    for (let k = to; k >= from && endLsn === null; k--) {
      const s = this.present[k]!;
      if (!s.scanned) {
        endLsn = (s.segNo + 1) * segSize; // assume a complete segment
        break;
      }
      if (s.lastRecordEndLsn !== null) {
        endLsn = s.lastRecordEndLsn;
        lastRecordLsn = s.lastRecordLsn;
      }
    }
    if (lastRecordLsn === null) {
      for (let k = to; k >= from && lastRecordLsn === null; k--) lastRecordLsn = this.present[k]!.lastRecordLsn;
    }
    return {
      firstSeg: this.present[from]!.segNo,
      lastSeg: this.present[to]!.segNo,
      from,
      to,
      endLsn: endLsn ?? this.present[from]!.segNo * segSize,
      lastRecordLsn,
    };
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

  /** "segment X is missing" / "segments X..Y are missing" for the gap [from, to]. */
  missingText(from: number, to: number): string {
    return from === to ? `segment ${this.designatedName(from)} is missing` : `segments ${this.designatedName(from)}..${this.designatedName(to)} are missing`;
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

  segmentAt(segNo: number): SegmentFacts | undefined {
    const i = this.indexOf(segNo);
    return i === -1 ? undefined : this.present[i];
  }

  indexOf(segNo: number): number {
    let lo = 0;
    let hi = this.present.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.present[mid]!.segNo;
      if (s === segNo) return mid;
      if (s < segNo) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  runAt(segNo: number): Run | undefined {
    return this.runs.find((r) => r.firstSeg <= segNo && segNo <= r.lastSeg);
  }

  /** The first segment number in [from, to] that is missing, or null. */
  firstMissing(from: number, to: number): number | null {
    for (let s = from; s <= to; s++) if (this.indexOf(s) === -1) return s;
    return null;
  }

  /** The run after `run`, if any (WAL that exists beyond a gap). */
  runAfter(run: Run): Run | undefined {
    return this.runs[this.runs.indexOf(run) + 1];
  }

  /** Newest transaction time among records that start before `lsn` on this lineage. */
  maxXactTimeBefore(lsn: number): number | null {
    const seg = this.view.segOf(lsn);
    let m = -Infinity;
    // Whole segments before `seg`.
    let lo = 0;
    let hi = this.present.length - 1;
    let idx = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.present[mid]!.segNo < seg) {
        idx = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (idx >= 0) m = this.prefixMax[idx]!;
    const s = this.segmentAt(seg);
    if (s?.xacts) {
      for (const r of this.view.input.xacts.inSegment(s.timeline, s.segNo)) if (r.lsn < lsn && r.time > m) m = r.time;
    }
    return m === -Infinity ? null : m;
  }

  /**
   * The first transaction-end record at or after `fromLsn` (in WAL order, within segments
   * [seg(fromLsn), untilSeg]) that satisfies `pred`. `maxPred` tells from a segment's newest
   * time whether the segment can hold one. Stops at a missing or unscanned segment.
   */
  findXact(
    fromLsn: number,
    untilSeg: number,
    pred: (r: XactRecord) => boolean,
    maxPred: (maxTime: number) => boolean,
  ): { found: XactRecord } | { unscanned: SegmentFacts } | { missing: number } | null {
    for (let seg = this.view.segOf(fromLsn); seg <= untilSeg; seg++) {
      const s = this.segmentAt(seg);
      if (!s) return { missing: seg };
      if (!s.scanned) return { unscanned: s };
      if (!s.xacts || !maxPred(s.xacts.maxTime)) continue;
      for (const r of this.view.input.xacts.inSegment(s.timeline, s.segNo)) {
        if (r.lsn >= fromLsn && pred(r)) return { found: r };
      }
    }
    return null;
  }

  /** Newest transaction time among records starting at or after `fromLsn` inside `run`. */
  maxXactTimeFrom(fromLsn: number, run: Run): number | null {
    const first = this.view.segOf(fromLsn);
    let m = -Infinity;
    for (let k = run.from; k <= run.to; k++) {
      const s = this.present[k]!;
      if (s.segNo < first || !s.xacts) continue;
      if (s.segNo > first) {
        if (s.xacts.maxTime > m) m = s.xacts.maxTime;
        continue;
      }
      for (const r of this.view.input.xacts.inSegment(s.timeline, s.segNo)) if (r.lsn >= fromLsn && r.time > m) m = r.time;
    }
    return m === -Infinity ? null : m;
  }

  /** The last transaction-end record that starts in [fromLsn, beforeLsn), or null. */
  lastXactBetween(fromLsn: number, beforeLsn: number): XactRecord | null {
    for (let seg = this.view.segOf(beforeLsn - 1); seg >= this.view.segOf(fromLsn); seg--) {
      const s = this.segmentAt(seg);
      if (!s?.xacts) continue;
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
      .filter((r) => this.reads(r.timeline, r.segNo) && this.indexOf(r.segNo) !== -1)
      .sort((a, b) => a.lsn - b.lsn);
  }

  /** The WAL files recovery reads from `fromSeg` to `toSeg`, grouped by file timeline. */
  segmentRanges(fromSeg: number, toSeg: number): { timeline: number; first: string; last: string; count: number }[] {
    const out: { timeline: number; first: string; last: string; count: number }[] = [];
    let cur: { timeline: number; firstSeg: number; lastSeg: number } | null = null;
    for (let s = fromSeg; s <= toSeg; s++) {
      const tl = this.fileTimeline(s);
      if (cur && cur.timeline === tl) cur.lastSeg = s;
      else {
        if (cur) out.push(this.rangeOut(cur));
        cur = { timeline: tl, firstSeg: s, lastSeg: s };
      }
    }
    if (cur) out.push(this.rangeOut(cur));
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
