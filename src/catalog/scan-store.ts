/**
 * The time-aware part of the catalog: what the WAL records of each archived segment say
 * (transaction ends with their times, restore points, checkpoints, end-of-recovery, backup
 * ends), stored by archive-push and sync (schema: migration 3 in schema.ts); the recovery
 * planner reads them through src/recovery/catalog-input.ts.
 *
 * Records that span segments. A record belongs to the file it starts in. Scanning file N alone
 * leaves the record that continues into N+1 as N's `tail`; scanning N+1 alone leaves its
 * continuation as N+1's `head` (both small JSON values from src/wal/scanner.ts). Both are kept in
 * wal_scans; whichever file arrives second completes the record (completeSpanningRecord) and
 * stores it under N. Rows are keyed by (file, LSN) and inserted with INSERT OR IGNORE, all in the
 * push's single write transaction (SQLite serializes concurrent pushes), so the record is stored
 * exactly once whatever the order, and never when only one half is archived.
 *
 * Times are stored as integers: microseconds since the Unix epoch.
 */
import { logger } from '../log.js';
import { formatLsn, parseWalFileName, type WalFileName } from '../wal/names.js';
import type { SegmentInfo } from '../wal/page.js';
import {
  completeSpanningRecord,
  scanSegment,
  type HeadCont,
  type SpanResult,
  type TailCont,
  type WalEvents,
} from '../wal/scanner.js';
import type { ScanFacts } from '../wal/scan-record.js';
import { pgTimeToMicros } from '../time.js';
import type { XactKind, XactRecord } from '../wal/archived-events.js';
import type { Catalog } from './catalog.js';

const KIND_CODE: Record<XactKind, number> = { commit: 0, abort: 1, commit_prepared: 2, abort_prepared: 3 };
const KIND_NAME: XactKind[] = ['commit', 'abort', 'commit_prepared', 'abort_prepared'];

interface ScanRow {
  id: number;
  file: string;
  timeline: number;
  seg_no: number;
  partial: number;
  start_lsn: number;
  end_lsn: number;
  last_record_lsn: number | null;
  head_cont: string | null;
  tail_cont: string | null;
  tail_state: string | null;
}

/** What storeScan needs of a segment: where it is and how to rescan it. */
export type SegmentPlace = Pick<SegmentInfo, 'segNo' | 'segSize' | 'startLsn' | 'pgMajor'>;

/**
 * Stores a file's scan (inside the caller's write transaction, after its wal_files row) and
 * completes the records spanning into or out of it. `raw` is the file itself: with it a record
 * whose continuation fragment is too short to decode is finished by rescanning.
 */
export function storeScan(cat: Catalog, file: WalFileName, seg: SegmentPlace, scan: ScanFacts, raw?: Buffer): void {
  const existing = cat.statement('SELECT id FROM wal_scans WHERE file = ?').get(file.name) as { id: number } | undefined;
  let id: number;
  if (existing) {
    id = existing.id; // re-push of an identical file: its records are stored already
  } else {
    const s = scan.summary;
    const t = (x: number | null) => (x === null ? null : pgTimeToMicros(x));
    const res = cat
      .statement(
        `INSERT INTO wal_scans (file, timeline, seg_no, partial, start_lsn, end_lsn, end_reason, first_record_lsn, last_record_lsn, records,
           commits, aborts, first_xact_time, last_xact_time, min_xact_time, max_xact_time, head_cont, tail_cont, tail_lsn, tail_state, scanned_at, first_record_prev)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        file.name,
        file.timeline,
        seg.segNo,
        file.kind === 'partial' ? 1 : 0,
        scan.startLsn,
        scan.endLsn,
        scan.endReason,
        scan.firstRecordLsn,
        scan.lastRecordLsn,
        scan.records,
        s.commits,
        s.aborts,
        t(s.firstTime),
        t(s.lastTime),
        t(s.minTime),
        t(s.maxTime),
        scan.headCont ? JSON.stringify(scan.headCont) : null,
        scan.tailCont ? JSON.stringify(scan.tailCont) : null,
        scan.tailCont ? scan.tailCont.lsn : null,
        scan.tailCont ? 'pending' : null,
        new Date().toISOString(),
        scan.firstRecordPrev,
      );
    id = Number(res.lastInsertRowid);
    insertEvents(cat, id, scan);
  }
  const current = raw ? { name: file.name, raw, seg } : undefined;
  // This file's own tail, then a tail in an earlier file that this file's head continues.
  const self = cat.statement('SELECT * FROM wal_scans WHERE id = ?').get(id) as ScanRow;
  if (self.tail_state === 'pending' || self.tail_state === 'needs-rescan') completeTail(cat, self, current);
  if (self.head_cont) {
    for (let k = seg.segNo - 1, hops = 0; k >= 0 && hops < 70; k--, hops++) {
      const rows = cat
        .statement("SELECT * FROM wal_scans WHERE seg_no = ? AND timeline <= ? AND tail_state IN ('pending', 'needs-rescan') ORDER BY timeline DESC")
        .all(k, file.timeline) as ScanRow[];
      for (const r of rows) completeTail(cat, r, current);
      // Keep walking back only through files that are nothing but a continuation (a record
      // longer than a segment): a file with records of its own ends any earlier record.
      const mid = cat.statement('SELECT count(*) AS n FROM wal_scans WHERE seg_no = ? AND records = 0 AND tail_cont IS NULL AND head_cont IS NOT NULL').get(k) as { n: number };
      if (rows.length > 0 || mid.n === 0) break;
    }
  }
}

function insertEvents(cat: Catalog, id: number, ev: WalEvents): void {
  // Many rows per statement: a busy segment holds tens of thousands of transaction ends.
  const BATCH = 64;
  const one = '(?, ?, ?, ?, ?, ?)';
  const sql = (n: number) => `INSERT OR IGNORE INTO wal_xacts (scan_id, lsn, end_lsn, xid, kind, xact_time) VALUES ${Array(n).fill(one).join(', ')}`;
  const full = ev.xacts.length >= BATCH ? cat.statement(sql(BATCH)) : null;
  const args: number[] = [];
  let i = 0;
  for (; full && i + BATCH <= ev.xacts.length; i += BATCH) {
    args.length = 0;
    for (let k = i; k < i + BATCH; k++) {
      const r = ev.xacts[k]!;
      args.push(id, r.lsn, r.endLsn, r.xid, KIND_CODE[r.kind], pgTimeToMicros(r.time));
    }
    full.run(args);
  }
  if (i < ev.xacts.length) {
    args.length = 0;
    for (let k = i; k < ev.xacts.length; k++) {
      const r = ev.xacts[k]!;
      args.push(id, r.lsn, r.endLsn, r.xid, KIND_CODE[r.kind], pgTimeToMicros(r.time));
    }
    cat.statement(sql(ev.xacts.length - i)).run(args);
  }
  if (ev.restorePoints.length) {
    const p = cat.statement('INSERT OR IGNORE INTO wal_restore_points (scan_id, lsn, end_lsn, name, rp_time) VALUES (?, ?, ?, ?, ?)');
    for (const r of ev.restorePoints) p.run(id, r.lsn, r.endLsn, r.name, pgTimeToMicros(r.time));
  }
  if (ev.checkpoints.length) {
    const c = cat.statement('INSERT OR IGNORE INTO wal_checkpoints (scan_id, lsn, end_lsn, redo_lsn, cp_time, online, tli, prev_tli) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    for (const r of ev.checkpoints) c.run(id, r.lsn, r.endLsn, r.redo, pgTimeToMicros(r.time), r.online ? 1 : 0, r.tli, r.prevTli);
  }
  if (ev.endOfRecovery.length) {
    const e = cat.statement('INSERT OR IGNORE INTO wal_end_of_recovery (scan_id, lsn, end_lsn, eor_time, new_tli, prev_tli) VALUES (?, ?, ?, ?, ?, ?)');
    for (const r of ev.endOfRecovery) e.run(id, r.lsn, r.endLsn, pgTimeToMicros(r.time), r.newTli, r.prevTli);
  }
  if (ev.backupEnds.length) {
    const b = cat.statement('INSERT OR IGNORE INTO wal_backup_ends (scan_id, lsn, end_lsn, backup_start_lsn) VALUES (?, ?, ?, ?)');
    for (const r of ev.backupEnds) b.run(id, r.lsn, r.endLsn, r.backupStartLsn);
  }
}

/** Recomputes a file's transaction summary from its rows (after a spanning record joined it). */
function resummarize(cat: Catalog, id: number): void {
  cat
    .statement(
      `UPDATE wal_scans SET
         commits = (SELECT count(*) FROM wal_xacts WHERE scan_id = @id AND kind IN (0, 2)),
         aborts = (SELECT count(*) FROM wal_xacts WHERE scan_id = @id AND kind IN (1, 3)),
         min_xact_time = (SELECT min(xact_time) FROM wal_xacts WHERE scan_id = @id),
         max_xact_time = (SELECT max(xact_time) FROM wal_xacts WHERE scan_id = @id),
         first_xact_time = (SELECT xact_time FROM wal_xacts WHERE scan_id = @id ORDER BY lsn LIMIT 1),
         last_xact_time = (SELECT xact_time FROM wal_xacts WHERE scan_id = @id ORDER BY lsn DESC LIMIT 1)
       WHERE id = @id`,
    )
    .run({ id });
}

/**
 * Tries to complete `tailRow`'s record with the heads of the following files. Candidate copies of
 * the next segment: the same timeline first, then later timelines (a child's copy of the switch
 * segment holds the same bytes before its switchpoint); the CRC decides.
 */
function completeTail(cat: Catalog, tailRow: ScanRow, current?: { name: string; raw: Buffer; seg: SegmentPlace }): void {
  const tail = JSON.parse(tailRow.tail_cont!) as TailCont;
  const candidates = (segNo: number) =>
    cat
      .statement('SELECT * FROM wal_scans WHERE seg_no = ? AND timeline >= ? AND head_cont IS NOT NULL ORDER BY timeline = ? DESC, timeline')
      .all(segNo, tailRow.timeline, tailRow.timeline) as ScanRow[];
  for (const first of candidates(tailRow.seg_no + 1)) {
    const chain: ScanRow[] = [first];
    let head = JSON.parse(first.head_cont!) as HeadCont;
    while (!head.ends && !head.overwritten && !head.broken && chain.length < 70) {
      const next = candidates(tailRow.seg_no + 1 + chain.length).find((r) => r.timeline === first.timeline) ?? candidates(tailRow.seg_no + 1 + chain.length)[0];
      if (!next) break;
      chain.push(next);
      head = JSON.parse(next.head_cont!) as HeadCont;
    }
    let span: SpanResult = completeSpanningRecord(
      tail,
      chain.map((r) => JSON.parse(r.head_cont!) as HeadCont),
    );
    const last = chain[chain.length - 1]!;
    if (span.status === 'needs-rescan' && current && current.name === last.file && chain.length === 1) {
      const again = scanSegment(current.raw, { segSize: current.seg.segSize, startLsn: current.seg.startLsn, pgMajor: current.seg.pgMajor, partial: last.partial === 1, carry: tail });
      if (again.spanning) span = again.spanning;
    }
    switch (span.status) {
      case 'complete':
        insertEvents(cat, tailRow.id, span.events);
        resummarize(cat, tailRow.id);
        cat.statement("UPDATE wal_scans SET tail_state = 'complete' WHERE id = ?").run(tailRow.id);
        // The file the record ends in: when nothing else ends there, it is its last record.
        cat.statement('UPDATE wal_scans SET last_record_lsn = ? WHERE id = ? AND last_record_lsn IS NULL AND end_lsn = ?').run(span.lsn, last.id, span.endLsn);
        return;
      case 'aborted':
        cat.statement("UPDATE wal_scans SET tail_state = 'aborted' WHERE id = ?").run(tailRow.id);
        return;
      case 'needs-rescan':
        cat.statement("UPDATE wal_scans SET tail_state = 'needs-rescan' WHERE id = ?").run(tailRow.id);
        logger.warn('a record spanning two segments needs the second one rescanned to be read; it is left out of the catalog until that segment is pushed again', {
          record: formatLsn(tail.lsn),
          file: tailRow.file,
        });
        return;
      case 'incomplete':
        return; // a later segment still missing
      case 'invalid':
        logger.debug('continuation does not complete the record', { record: formatLsn(tail.lsn), tail: tailRow.file, head: first.file, reason: span.reason });
        continue; // another copy may
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reading back: the planner's input.

/** A transaction row of the catalog, joined with its scan's place. */
export type XactRow = { timeline: number; seg_no: number; lsn: number; end_lsn: number; xid: number; kind: number; xact_time: number };

export function toRecord(r: XactRow): XactRecord {
  return { timeline: r.timeline, segNo: r.seg_no, lsn: r.lsn, endLsn: r.end_lsn, xid: r.xid, kind: KIND_NAME[r.kind]!, time: r.xact_time };
}

/** For tests and diagnostics: the stored records of one file. */
export function storedEvents(cat: Catalog, name: string): { xacts: XactRecord[]; restorePoints: { lsn: number; name: string; time: number }[]; tailState: string | null } {
  const file = parseWalFileName(name);
  const row = cat.db.prepare('SELECT id, tail_state FROM wal_scans WHERE file = ?').get(name) as { id: number; tail_state: string | null } | undefined;
  if (!file || !row) return { xacts: [], restorePoints: [], tailState: null };
  const xacts = (
    cat.db
      .prepare('SELECT s.timeline, s.seg_no, x.lsn, x.end_lsn, x.xid, x.kind, x.xact_time FROM wal_xacts x JOIN wal_scans s ON s.id = x.scan_id WHERE x.scan_id = ? ORDER BY x.lsn')
      .all(row.id) as XactRow[]
  ).map(toRecord);
  const restorePoints = cat.db.prepare('SELECT lsn, name, rp_time AS time FROM wal_restore_points WHERE scan_id = ? ORDER BY lsn').all(row.id) as {
    lsn: number;
    name: string;
    time: number;
  }[];
  return { xacts, restorePoints, tailState: row.tail_state };
}
