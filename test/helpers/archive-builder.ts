/** Builds planner inputs by hand for unit tests: segments, commits, restore points, backups, forks. */
import { segmentSourceFromList, summarize, xactSourceFromList, type BackupFacts, type PlannerInput, type RestorePointRecord, type SegmentFacts, type TimelineFacts, type XactKind, type XactRecord } from '../../src/recovery/input.js';
import { segmentName } from '../../src/wal/names.js';

export const SEG = 16 * 1024 * 1024;
/** LSN of byte `off` of segment `seg`. */
export const L = (seg: number, off = 0) => seg * SEG + off;
/** Stretches are cut every 4 segments (the catalog cuts every 1024), so tests cross their edges. */
const STRETCH_CUT = 4;
export const BASE = Date.UTC(2026, 10, 24, 10, 0, 0) * 1000;
/** Microseconds `min` minutes (and `sec` seconds) after 2026-11-24T10:00:00Z. */
export const T = (min: number, sec = 0) => BASE + (min * 60 + sec) * 1_000_000;

export class ArchiveBuilder {
  segments = new Map<string, SegmentFacts>();
  xacts: XactRecord[] = [];
  rps: RestorePointRecord[] = [];
  backups: BackupFacts[] = [];
  timelines: TimelineFacts[] = [];
  private nextXid = 1000;

  /** Archives segments [from, to] of a timeline; each holds records up to byte 0xFFF000. */
  segs(tl: number, from: number, to = from, opts: { lastRecordOff?: number; scanned?: boolean } = {}): this {
    for (let s = from; s <= to; s++) {
      const off = opts.lastRecordOff ?? 0xfff000;
      this.segments.set(`${tl}:${s}`, {
        name: segmentName(tl, s, SEG),
        timeline: tl,
        segNo: s,
        scanned: opts.scanned ?? true,
        lastRecordLsn: L(s, off),
        lastRecordEndLsn: L(s, off + 0x40),
        xacts: null,
      });
    }
    return this;
  }

  drop(tl: number, seg: number): this {
    this.segments.delete(`${tl}:${seg}`);
    return this;
  }

  xact(tl: number, lsn: number, time: number, opts: { xid?: number; kind?: XactKind; len?: number } = {}): number {
    const xid = opts.xid ?? this.nextXid++;
    this.xacts.push({ timeline: tl, segNo: Math.floor(lsn / SEG), lsn, endLsn: lsn + (opts.len ?? 0x28), xid, kind: opts.kind ?? 'commit', time });
    return xid;
  }

  rp(tl: number, lsn: number, name: string, time: number): this {
    this.rps.push({ timeline: tl, segNo: Math.floor(lsn / SEG), lsn, endLsn: lsn + 0x68, name, time });
    return this;
  }

  backup(name: string, startLsn: number, stopLsn: number, stopTime: number | null, tl = 1, stopTl = tl): this {
    this.backups.push({ name: `${name}.backup`, label: name, startLsn, stopLsn, startTimeline: tl, stopTimeline: stopTl, startTime: stopTime, stopTime });
    return this;
  }

  fork(timeline: number, parent: number, switchpoint: number): this {
    this.timelines.push({ timeline, parent, switchpoint });
    return this;
  }

  input(): PlannerInput {
    const segments = [...this.segments.values()].map((s) => ({
      ...s,
      xacts: s.scanned ? summarize(this.xacts.filter((x) => x.timeline === s.timeline && x.segNo === s.segNo)) : null,
    }));
    return {
      segSize: SEG,
      segments: segmentSourceFromList(segments, STRETCH_CUT),
      timelines: this.timelines,
      backups: this.backups,
      restorePoints: this.rps,
      xacts: xactSourceFromList(this.xacts),
    };
  }
}
