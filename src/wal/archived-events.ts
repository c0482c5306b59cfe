/**
 * The records of archived WAL that recovery targets are compared against, as the catalog stores
 * them and the planner reads them: where each lies (the archived file's timeline and segment,
 * its LSNs) and what it says.
 */

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
