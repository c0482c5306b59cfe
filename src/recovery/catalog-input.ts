/**
 * The planner's input (input.ts) read from the catalog: backups, timelines, restore points and
 * dropped segments at once; segments as stretches and transaction rows on demand.
 */
import type { Catalog } from '../catalog/catalog.js';
import { XACT_SCANS } from '../catalog/schema.js';
import { segmentName } from '../wal/names.js';
import { toRecord, type XactRow } from '../catalog/scan-store.js';
import { isoToMicros } from '../time.js';
import type { BackupFacts, PlannerInput, RestorePointRecord, SegmentFacts, SegmentSource, SegmentStretch, XactRecord, XactSource } from './input.js';

/**
 * A backup history file's STOP TIME has whole seconds: the backup ended somewhere within that
 * second, so the planner takes the start of the next one (it must never promise a moment before
 * the backup is consistent). walship's own backups record the moment pg_backup_stop returned, to
 * the millisecond, which is already at or after the end.
 */
function nextWholeSecond(micros: number | null): number | null {
  return micros === null ? null : Math.floor(micros / 1_000_000) * 1_000_000 + 1_000_000;
}

/**
 * The planner's input from the catalog. Segments are read as stretches (wal_seg_stretches,
 * migration 4), single segments and transaction rows on demand.
 */
export function loadPlannerInput(cat: Catalog): PlannerInput {
  const db = cat.db;
  const segSize = cat.repository()?.wal_segment_size ?? 16 * 1024 * 1024;

  // A walship backup also leaves the server's backup history file: the same backup, listed once
  // (as walship's, which `walship restore` can use).
  const all = cat.backups().filter((b) => b.status === 'complete');
  const ownStarts = new Set(all.filter((b) => b.source === 'walship').map((b) => b.start_lsn));
  const backups: BackupFacts[] = all
    .filter((b) => b.source === 'walship' || !ownStarts.has(b.start_lsn))
    .map((b) => ({
      name: b.name,
      label: b.label,
      startLsn: b.start_lsn,
      stopLsn: b.stop_lsn,
      startTimeline: b.start_timeline,
      stopTimeline: b.stop_timeline,
      startTime: isoToMicros(b.start_time),
      stopTime: b.source === 'history-file' ? nextWholeSecond(isoToMicros(b.stop_time)) : isoToMicros(b.stop_time),
    }));

  const restorePoints: RestorePointRecord[] = (
    db
      .prepare(
        `SELECT s.timeline, s.seg_no, p.lsn, p.end_lsn, p.name, p.rp_time
           FROM wal_restore_points p JOIN wal_scans s ON s.id = p.scan_id
          WHERE s.partial = 0 ORDER BY p.lsn`,
      )
      .all() as { timeline: number; seg_no: number; lsn: number; end_lsn: number; name: string; rp_time: number }[]
  ).map((r) => ({ timeline: r.timeline, segNo: r.seg_no, lsn: r.lsn, endLsn: r.end_lsn, name: r.name, time: r.rp_time }));

  return {
    segSize,
    segments: catalogSegmentSource(cat),
    timelines: cat.timelines().map((t) => ({ timeline: t.timeline, parent: t.parent, switchpoint: t.switchpoint })),
    backups,
    restorePoints,
    xacts: catalogXactSource(cat, segSize),
    dropped: cat.dropped().map((d) => ({ timeline: d.timeline, segNo: d.segNo, at: d.droppedAt, reason: d.reason })),
  };
}

type SegmentRow = {
  name: string;
  timeline: number;
  seg_no: number;
  scan_id: number | null;
  start_lsn: number | null;
  end_lsn: number | null;
  last_record_lsn: number | null;
  commits: number | null;
  aborts: number | null;
  first_xact_time: number | null;
  last_xact_time: number | null;
  min_xact_time: number | null;
  max_xact_time: number | null;
};

function toSegmentFacts(r: SegmentRow): SegmentFacts {
  const count = (r.commits ?? 0) + (r.aborts ?? 0);
  return {
    name: r.name,
    timeline: r.timeline,
    segNo: r.seg_no,
    scanned: r.scan_id !== null,
    lastRecordLsn: r.last_record_lsn,
    lastRecordEndLsn: r.end_lsn !== null && r.start_lsn !== null && r.end_lsn > r.start_lsn ? r.end_lsn : null,
    xacts:
      count > 0 && r.max_xact_time !== null
        ? { count, firstTime: r.first_xact_time!, lastTime: r.last_xact_time!, minTime: r.min_xact_time!, maxTime: r.max_xact_time! }
        : null,
  };
}

function catalogSegmentSource(cat: Catalog): SegmentSource {
  const stretches = cat.db.prepare(
    `SELECT timeline, first_seg AS firstSeg, last_seg AS lastSeg, unscanned, max_xact_time AS maxXactTime
       FROM wal_seg_stretches ORDER BY timeline, first_seg`,
  );
  const segments = cat.db.prepare(
    `SELECT f.name, f.timeline, f.seg_no, s.id AS scan_id, s.start_lsn, s.end_lsn, s.last_record_lsn,
            s.commits, s.aborts, s.first_xact_time, s.last_xact_time, s.min_xact_time, s.max_xact_time
       FROM wal_files f LEFT JOIN wal_scans s ON s.file = f.name
      WHERE f.timeline = ? AND f.seg_no BETWEEN ? AND ? AND f.kind = 'segment'
      ORDER BY f.seg_no`,
  );
  const maxXactTime = cat.db.prepare(`SELECT max(max_xact_time) FROM wal_scans WHERE timeline = ? AND seg_no BETWEEN ? AND ? AND ${XACT_SCANS}`).pluck();
  let all: SegmentStretch[] | undefined;
  return {
    stretches: () => (all ??= stretches.all() as SegmentStretch[]),
    segments: (timeline, from, to) => (segments.all(timeline, from, to) as SegmentRow[]).map(toSegmentFacts),
    maxXactTime: (timeline, from, to) => maxXactTime.get(timeline, from, to) as number | null,
  };
}

function catalogXactSource(cat: Catalog, segSize: number): XactSource {
  const bySeg = cat.db.prepare(
    `SELECT s.timeline, s.seg_no, x.lsn, x.end_lsn, x.xid, x.kind, x.xact_time
       FROM wal_xacts x JOIN wal_scans s ON s.id = x.scan_id WHERE s.file = ? ORDER BY x.lsn`,
  );
  const byXid = cat.db.prepare(
    `SELECT s.timeline, s.seg_no, x.lsn, x.end_lsn, x.xid, x.kind, x.xact_time
       FROM wal_xacts x JOIN wal_scans s ON s.id = x.scan_id WHERE x.xid = ? AND s.partial = 0 ORDER BY x.lsn`,
  );
  const cache = new Map<string, XactRecord[]>();
  return {
    inSegment(timeline, segNo) {
      const name = segmentName(timeline, segNo, segSize);
      let hit = cache.get(name);
      if (!hit) {
        hit = (bySeg.all(name) as XactRow[]).map(toRecord);
        if (cache.size > 256) cache.clear();
        cache.set(name, hit);
      }
      return hit;
    },
    withXid: (xid) => (byXid.all(xid) as XactRow[]).map(toRecord),
  };
}
