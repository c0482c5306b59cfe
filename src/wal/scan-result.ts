/**
 * What a segment's scan returns (scanner.ts), and the pieces of records that cross segment
 * boundaries (spanning.ts): their types, the WAL layout constants they are measured in, and the
 * summary of a scan's transaction ends. All LSNs are numbers (exact below 2^53); all times are µs
 * since 2000-01-01 UTC.
 */
import type { WalEvents, XactEvent } from './records.js';

export const PAGE = 8192;
export const PAGE_MASK = PAGE - 1;
export const RECORD_HEADER = 24;
/** XLogRecordMaxSize (1020 MiB in 16+; 15 and older allow up to 1 GiB - 1). */
export const MAX_RECORD = 1024 * 1024 * 1024 - 1;
/** A continuation fragment always keeps its first bytes raw: they may finish a split record header. */
export const HEAD_RAW_MIN = 16;
/** A continuation fragment keeps this many leading bytes: enough to decode every small record. */
export const HEAD_KEEP = 256;
/** Leading bytes kept of uninteresting records with verifyBlocks (covers any block-header area). */
export const VERIFY_KEEP = 1024;
/** With `carry`, the most bytes of the continuation kept to finish decoding the carried record. */
export const CARRY_KEEP_CAP = 64 * 1024 * 1024;

export const maxAlign = (n: number): number => (n + 7) & ~7;

/**
 * The start of a record that continues into the next segment (JSON-serializable, small).
 * Produced by scanSegment as `tailCont`; consumed by completeSpanningRecord or as `carry`.
 */
export interface TailCont {
  v: 1;
  pgMajor: number;
  /** LSN where the record starts (in the segment that produced the first TailCont). */
  lsn: number;
  /** xl_tot_len. */
  totLen: number;
  /** Bytes of the record seen so far (the rest, totLen - have, is in the following segment(s)). */
  have: number;
  /** Start LSN of the segment whose head continues the record (its headCont.startLsn). */
  continuesAt: number;
  /** CRC-32C of the record's bytes [24, have) (0 while have <= 24). */
  crc: number;
  /** Base64 of the record's bytes [0, k): the header and whatever decoding needs (k <= have). */
  bytes: string;
  /** LSN of the record before this one, when known (its xl_prev must equal it). */
  prevLsn: number | null;
  /** Resource manager and xl_info, once the 24-byte header has been seen; else null. */
  rmid: number | null;
  info: number | null;
  /** Whether walship decodes this kind of record (a transaction end, checkpoint, ...); null if unknown yet. */
  interesting: boolean | null;
}

/** What scanSegment takes as `carry`: the previous segment's tailCont. */
export type Carry = TailCont;

/** The continuation of a record from the previous segment, at the start of a segment (JSON-serializable, small). */
export interface HeadCont {
  v: 1;
  /** The segment this fragment is in. */
  startLsn: number;
  segSize: number;
  /** xlp_rem_len of the segment's first page: bytes of the record not in earlier segments. */
  remLen: number;
  /** Bytes of the record in this segment (== remLen when it ends here). */
  len: number;
  /** The record ends in this segment. */
  ends: boolean;
  /** When it ends here: PostgreSQL's EndRecPtr for it (MAXALIGNed end); also where this segment's first own record starts. */
  endLsn: number | null;
  /** CRC-32C of the fragment's bytes [min(len, 16), len). */
  crc: number;
  /** Base64 of the fragment's bytes [0, min(len, 256)). */
  raw: string;
  /** The continuation was replaced (XLP_FIRST_IS_OVERWRITE_CONTRECORD): the record was aborted and is not WAL. */
  overwritten?: true;
  /** The continuation is cut short by invalid data (the record never completes): why. */
  broken?: string;
}

export type SpanResult =
  | {
      status: 'complete';
      lsn: number;
      endLsn: number;
      totLen: number;
      rmid: number;
      info: number;
      xid: number;
      /** The record's xl_prev. */
      prevLsn: number;
      /** What the record contributes (at most one entry in total). */
      events: WalEvents;
    }
  /** The record continues beyond the fragments given; `tail` stands for everything seen so far. */
  | { status: 'incomplete'; lsn: number; tail: TailCont }
  /** The record was never completed: PostgreSQL overwrote its continuation (OVERWRITE_CONTRECORD). */
  | { status: 'aborted'; lsn: number }
  /** The pieces do not make a valid record (CRC mismatch, broken continuation, pieces that do not fit). */
  | { status: 'invalid'; lsn: number; reason: string }
  /**
   * The record is valid, but decoding needs bytes that the continuation fragment did not keep
   * (only possible for a COMMIT/ABORT PREPARED record with big arrays before its xid). Scan the
   * following segment again with `carry`, which always decodes.
   */
  | { status: 'needs-rescan'; lsn: number; reason: string };

export type EndReason =
  /** Valid WAL runs to the end of the segment (a record may continue into the next: tailCont). */
  | 'segment-end'
  /** An XLOG_SWITCH record: the rest of the segment is padding. */
  | 'switch'
  /** xl_tot_len 0 or an all-zero page: no more WAL was written here. */
  | 'zero'
  /** A page whose xlp_pageaddr is not this page's address: stale data from a recycled file. */
  | 'page-mismatch'
  /** A record whose xl_prev is not the previous record: stale data. */
  | 'prev-mismatch'
  /** Invalid data that is not obviously stale (CRC mismatch, bad headers), in `partial` mode. */
  | 'bad-record'
  /** Same, outside `partial` mode: see `corruption`. */
  | 'corruption'
  /** The buffer is shorter than the segment. */
  | 'truncated';

export interface XactSummary {
  commits: number;
  aborts: number;
  /** xact_time of the first / last transaction end in WAL order (null when there is none). */
  firstTime: number | null;
  lastTime: number | null;
  minTime: number | null;
  maxTime: number | null;
}

export interface ScanResult extends WalEvents {
  v: 1;
  pgMajor: number;
  segSize: number;
  startLsn: number;
  /** xlp_tli of the first page. */
  pageTli: number;
  /**
   * End of the last complete record starting in this segment (PostgreSQL's EndRecPtr: MAXALIGNed,
   * the segment end after a switch); when none starts here, the end of the continuation at the
   * segment start if it ends here; else startLsn. Records after it are not counted.
   */
  endLsn: number;
  endReason: EndReason;
  /** Human-readable detail for endReason. */
  endDetail: string;
  /** Valid WAL runs to the end of the segment or to a switch (what every closed segment must satisfy). */
  complete: boolean;
  /** First / last complete record starting in this segment. */
  firstRecordLsn: number | null;
  /** xl_prev of the first record starting here: the last record starting before this segment. */
  firstRecordPrev: number | null;
  lastRecordLsn: number | null;
  /** Complete valid records starting in this segment (tailCont's record not included). */
  records: number;
  summary: XactSummary;
  /** The continuation at the start of the segment (null when a record starts at the first page). */
  headCont: HeadCont | null;
  /** The record that starts here (or, with carry, earlier) and continues past the segment end. */
  tailCont: TailCont | null;
  /** With `carry`: the carried record, completed (or not) by this segment's head. */
  spanning: SpanResult | null;
  /** Set when the segment holds invalid WAL that is not a stale tail (never in partial mode). */
  corruption: { lsn: number; reason: string } | null;
}

export interface ScanOptions {
  segSize: number;
  /** LSN of the segment's first byte. */
  startLsn: number;
  /** Major version the page magic must match (13–18). */
  pgMajor: number;
  /**
   * The file is a .partial (or a segment still being written): invalid data is taken as the
   * end of valid WAL (endReason 'bad-record') rather than corruption.
   */
  partial?: boolean;
  /** The previous segment's tailCont: complete the record it started (see `spanning`). */
  carry?: Carry | null;
  /** Also walk the block headers of every record and check that their lengths add up. */
  verifyBlocks?: boolean;
  /** Called for each complete valid record starting in this segment, in order. */
  onRecord?: (lsn: number, endLsn: number, totLen: number, rmid: number, info: number, xid: number) => void;
}

export function summarize(xacts: ReadonlyArray<XactEvent>): XactSummary {
  const s: XactSummary = { commits: 0, aborts: 0, firstTime: null, lastTime: null, minTime: null, maxTime: null };
  for (const x of xacts) {
    if (x.kind === 'commit' || x.kind === 'commit_prepared') s.commits++;
    else s.aborts++;
    if (s.firstTime === null) s.firstTime = x.time;
    s.lastTime = x.time;
    if (s.minTime === null || x.time < s.minTime) s.minTime = x.time;
    if (s.maxTime === null || x.time > s.maxTime) s.maxTime = x.time;
  }
  return s;
}
