/**
 * Whether one segment continues another: the WAL of segment k+1 of a timeline picks up where
 * segment k's ends (pure). Two servers with one system identifier (a clone started by mistake,
 * an old primary that was not fenced) write segments with the same names but different
 * histories; archive-push checks every segment it stores against its archived neighbours with
 * this, so that the repository never holds two histories on one timeline (archive/continuity.ts).
 *
 * What links two consecutive segments, as recovery checks it when it reads across them:
 *   - a record that starts in k and continues into k+1: k+1 starts with its continuation, and the
 *     two pieces make one record whose CRC checks out (or k+1 overwrites it: an aborted record);
 *   - otherwise k+1 starts with a record of its own;
 *   - the first record starting in k+1 points back (xl_prev) to the last record of k (or to the
 *     record spanning into k+1).
 * A segment that is entirely the middle of one long record carries on its remaining length.
 *
 * These are the links recovery itself checks: two histories whose records lie at the same
 * positions (the same workload from the same starting point) link up here as they would there.
 */
import { completeSpanningRecord, type HeadCont, type TailCont } from './scanner.js';
import { formatLsn } from './names.js';

/** What continuity needs of a scanned segment or .partial. */
export interface SegmentEnds {
  startLsn: number;
  /** xl_prev of the first record that starts in it (null: none starts there, or not known). */
  firstRecordPrev: number | null;
  /** The last complete record that starts in it. */
  lastRecordLsn: number | null;
  headCont: HeadCont | null;
  tailCont: TailCont | null;
}

export interface Break {
  /** Where the two stop agreeing. */
  lsn: number;
  reason: string;
}

/** Why `next` (the segment after `prev` on the same timeline) does not continue it, or null when it does. */
export function discontinuity(prev: SegmentEnds, next: SegmentEnds): Break | null {
  const at = next.startLsn;
  const head = next.headCont;
  // prev is nothing but the middle of a record begun earlier.
  const middle = !prev.tailCont && prev.headCont !== null && !prev.headCont.ends && !prev.headCont.overwritten && !prev.headCont.broken;
  if (prev.tailCont || middle) {
    if (!head) return { lsn: at, reason: `it starts with a record of its own, but the archived segment before it ends inside a record` };
    if (!head.overwritten) {
      if (prev.tailCont) {
        const span = completeSpanningRecord(prev.tailCont, [head]);
        if (span.status === 'invalid') return { lsn: prev.tailCont.lsn, reason: `the record spanning into it does not continue the archived one (${span.reason})` };
      } else if (head.remLen !== prev.headCont!.remLen - prev.headCont!.len) {
        return { lsn: at, reason: `it continues a record with ${head.remLen} bytes left, but the archived segment before it leaves ${prev.headCont!.remLen - prev.headCont!.len}` };
      }
    }
  } else if (head && !head.overwritten) {
    return { lsn: at, reason: `it continues a record, but the archived segment before it ends with a complete record` };
  }
  // The first record of its own points back to the last record before it.
  const back = head && !head.overwritten && prev.tailCont ? prev.tailCont.lsn : middle ? null : prev.lastRecordLsn;
  if (next.firstRecordPrev !== null && back !== null && next.firstRecordPrev !== back) {
    return { lsn: at, reason: `its first record points back to ${formatLsn(next.firstRecordPrev)}, but the archived history's last record before it is at ${formatLsn(back)}` };
  }
  return null;
}
