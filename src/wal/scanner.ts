/**
 * The WAL record scanner (pure): walks one segment's pages and records, checks every record's
 * CRC-32C, and reports what recovery targets and the catalog need (transaction ends with their
 * times, restore points, checkpoints, end-of-recovery, backup ends, switches).
 * See docs/wal-format.md.
 *
 * Attribution: a record belongs to the segment in which it STARTS. A record that starts in
 * segment N and ends in N+1 (or later) is reported by neither scan alone: N's scan returns
 * `tailCont` (the record's start: its LSN, length, a running CRC and the few leading bytes needed
 * to decode it) and N+1's scan returns `headCont` (the continuation at its start: how long, a CRC
 * of it and its first bytes). Whoever holds both calls completeSpanningRecord(tailCont,
 * [headCont, ...]) — in whichever order the segments arrived — and gets the record checked and
 * decoded once; applySpan() adds it to N's result. Scanning N+1 with `carry: tailCont` does the
 * same in one go and returns it as `spanning`. Both pieces are small JSON values whatever the size
 * of the record (up to 1 GiB): CRCs are combined arithmetically, never recomputed over both.
 *
 * All LSNs are numbers (exact below 2^53). All times are µs since 2000-01-01 UTC (numbers).
 */
import { crc32cRaw, crc32cAligned, crc32cCombine, wordView } from './crc32c.js';
import { formatLsn, isPowerOfTwo, MIN_SEG_SIZE, MAX_SEG_SIZE } from './names.js';
import {
  PAGE_MAGIC_TO_MAJOR,
  XLP_FIRST_IS_CONTRECORD,
  XLP_LONG_HEADER,
  XLP_FIRST_IS_OVERWRITE_CONTRECORD,
  XLP_ALL_FLAGS,
  SHORT_PAGE_HEADER_SIZE,
  LONG_PAGE_HEADER_SIZE,
} from './page.js';
import {
  WalEvents,
  XactEvent,
  emptyEvents,
  isInteresting,
  isSwitch,
  validRmid,
  locateMainData,
  decodeRecord,
  decodeError,
  decodeNeed,
  decodeUsed,
  DECODE_OK,
  DECODE_NEED,
  u16,
  u32,
  u64,
} from './records.js';

export type {
  WalEvents,
  XactEvent,
  XactKind,
  RestorePointEvent,
  CheckpointEvent,
  EndOfRecoveryEvent,
  BackupEndEvent,
  SwitchEvent,
  OverwriteContrecordEvent,
} from './records.js';
export { pgTimeToIso, pgTimeToUnixMs, unixMsToPgTime, PG_EPOCH_UNIX_US } from './records.js';

const PAGE = 8192;
const PAGE_MASK = PAGE - 1;
const RECORD_HEADER = 24;
/** XLogRecordMaxSize (1020 MiB in 16+; 15 and older allow up to 1 GiB - 1). */
const MAX_RECORD = 1024 * 1024 * 1024 - 1;
/** A continuation fragment always keeps its first bytes raw: they may finish a split record header. */
export const HEAD_RAW_MIN = 16;
/** A continuation fragment keeps this many leading bytes: enough to decode every small record. */
export const HEAD_KEEP = 256;
/** Leading bytes kept of uninteresting records with verifyBlocks (covers any block-header area). */
const VERIFY_KEEP = 1024;
/** With `carry`, the most bytes of the continuation kept to finish decoding the carried record. */
const CARRY_KEEP_CAP = 64 * 1024 * 1024;

const maxAlign = (n: number): number => (n + 7) & ~7;

// ---------------------------------------------------------------------------------------------
// Public types

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

// ---------------------------------------------------------------------------------------------
// Record assembly across pages and segments

const scratchEvents = emptyEvents();
function clearEvents(e: WalEvents): void {
  e.xacts.length = 0;
  e.restorePoints.length = 0;
  e.checkpoints.length = 0;
  e.endOfRecovery.length = 0;
  e.backupEnds.length = 0;
  e.switches.length = 0;
  e.overwrites.length = 0;
}

/** Collects a record's bytes piece by piece: running CRC over [24, have), keeps leading bytes. */
class Assembler {
  lsn = 0;
  totLen = 0;
  have = 0;
  continuesAt = 0;
  /** Raw CRC register (not inverted) over the record's bytes [24, have). */
  crc = -1;
  prevLsn: number | null = null;
  keep: Uint8Array = new Uint8Array(1024);
  keepLen = 0;
  keepWant = Infinity;
  typed = false;
  rmid = 0;
  info = 0;
  xid = 0;
  xlPrev = 0;
  interesting = false;

  constructor(
    readonly pgMajor: number,
    readonly verify: boolean,
  ) {}

  start(lsn: number, totLen: number, prevLsn: number | null): void {
    this.lsn = lsn;
    this.totLen = totLen;
    this.have = 0;
    this.crc = -1;
    this.prevLsn = prevLsn;
    this.keepLen = 0;
    this.keepWant = Infinity;
    this.typed = false;
  }

  private append(src: Uint8Array, s: number, n: number): void {
    if (this.keepLen + n > this.keep.length) {
      const bigger = new Uint8Array(Math.max(this.keepLen + n, this.keep.length * 2));
      bigger.set(this.keep.subarray(0, this.keepLen));
      this.keep = bigger;
    }
    this.keep.set(src.subarray(s, s + n), this.keepLen);
    this.keepLen += n;
  }

  /** Whether bytes from here on would still be kept. */
  wantsMore(): boolean {
    return this.keepLen === this.have && this.have < this.keepWant;
  }

  feed(src: Uint8Array, words: Int32Array | null, s: number, e: number): void {
    const len = e - s;
    if (this.keepLen === this.have && this.have < this.keepWant) {
      this.append(src, s, Math.min(len, this.keepWant - this.have));
    }
    const skip = this.have < RECORD_HEADER ? RECORD_HEADER - this.have : 0;
    if (skip < len) this.crc = crc32cRaw(src, words, s + skip, e, this.crc);
    this.have += len;
    this.afterGrowth();
  }

  /** Adds a continuation fragment known only by its first bytes and the CRC of the rest. */
  addFragment(raw: Uint8Array, fragLen: number, fragCrc: number): void {
    const S = Math.min(fragLen, HEAD_RAW_MIN, raw.length);
    this.feed(raw, null, 0, S);
    if (fragLen > S) {
      if (this.wantsMore()) {
        this.append(raw, S, Math.min(raw.length - S, fragLen - S, this.keepWant - this.have));
      }
      this.crc = ~crc32cCombine(~this.crc >>> 0, fragCrc, fragLen - S);
      this.have += fragLen - S;
      this.afterGrowth();
    }
  }

  private afterGrowth(): void {
    if (!this.typed) {
      if (this.have < RECORD_HEADER) return;
      const k = this.keep;
      this.typed = true;
      this.xid = u32(k, 4);
      this.xlPrev = u64(k, 8);
      this.info = k[16]!;
      this.rmid = k[17]!;
      this.interesting = isInteresting(this.rmid, this.info);
      if (!this.interesting) {
        // Stop keeping (unless more than the header was already kept: harmless).
        this.keepWant = Math.min(this.totLen, this.verify ? VERIFY_KEEP : RECORD_HEADER);
        if (this.keepLen > this.keepWant) this.keepLen = this.keepWant;
        return;
      }
      this.keepWant = this.totLen;
    }
    if (this.interesting && this.keepLen < this.keepWant && this.keepLen === this.have) {
      // Keep bytes only until the decoder has what it needs.
      clearEvents(scratchEvents);
      const st = decodeRecord(this.keep, 0, this.keepLen, this.totLen, this.rmid, this.info, this.xid, this.lsn, 0, this.pgMajor, scratchEvents);
      if (st === DECODE_OK) {
        // Keep exactly what decoding reads (and at least the header).
        const used = Math.max(RECORD_HEADER, decodeUsed());
        this.keepWant = used;
        if (this.keepLen > used) this.keepLen = used;
      } else if (st !== DECODE_NEED) this.keepWant = this.keepLen;
    }
  }

  /** CRC check once the record is complete. */
  crcOk(): boolean {
    const c = ~crc32cRaw(this.keep, null, 0, 20, this.crc) >>> 0;
    return c === u32(this.keep, 20);
  }

  toTail(continuesAt: number): TailCont {
    return {
      v: 1,
      pgMajor: this.pgMajor,
      lsn: this.lsn,
      totLen: this.totLen,
      have: this.have,
      continuesAt,
      crc: ~this.crc >>> 0,
      bytes: Buffer.from(this.keep.buffer, this.keep.byteOffset, this.keepLen).toString('base64'),
      prevLsn: this.prevLsn,
      rmid: this.typed ? this.rmid : null,
      info: this.typed ? this.info : null,
      interesting: this.typed ? this.interesting : null,
    };
  }

  static fromTail(t: TailCont, verify: boolean): Assembler {
    const a = new Assembler(t.pgMajor, verify);
    a.start(t.lsn, t.totLen, t.prevLsn);
    const bytes = Buffer.from(t.bytes, 'base64');
    a.keep = new Uint8Array(Math.max(1024, bytes.length));
    a.keep.set(bytes);
    a.keepLen = bytes.length;
    a.have = t.have;
    a.continuesAt = t.continuesAt ?? NaN; // NaN: stored before the field existed, not checked
    a.crc = ~t.crc;
    if (a.keepLen > a.have || (a.have > 0 && a.keepLen < Math.min(a.have, RECORD_HEADER))) {
      throw new RangeError('tail continuation: inconsistent byte counts');
    }
    a.afterGrowth();
    if (a.keepLen < a.have) a.keepWant = a.keepLen;
    return a;
  }
}

/**
 * Checks a completed record and decodes it into `events` (a fresh set when omitted).
 * `switchEnd`: where a switch record's EndRecPtr lies (the end of the segment it ends in).
 */
function finish(a: Assembler, endLsn: number, switchEnd: number, events: WalEvents = emptyEvents()): SpanResult {
  const lsn = a.lsn;
  if (!a.typed) return { status: 'invalid', lsn, reason: 'record shorter than its header' };
  if (a.prevLsn !== null && a.xlPrev !== a.prevLsn) {
    return { status: 'invalid', lsn, reason: `xl_prev ${formatLsn(a.xlPrev)} is not the previous record ${formatLsn(a.prevLsn)}` };
  }
  if (!validRmid(a.rmid, a.pgMajor)) return { status: 'invalid', lsn, reason: `invalid resource manager id ${a.rmid}` };
  if (!a.crcOk()) return { status: 'invalid', lsn, reason: `incorrect CRC in record at ${formatLsn(lsn)}` };
  const sw = isSwitch(a.rmid, a.info);
  const end = sw ? switchEnd : endLsn;
  if (a.interesting) {
    const st = decodeRecord(a.keep, 0, a.keepLen, a.totLen, a.rmid, a.info, a.xid, lsn, end, a.pgMajor, events);
    if (st === DECODE_NEED) {
      return { status: 'needs-rescan', lsn, reason: `decoding needs the record's first ${decodeNeed()} bytes, ${a.keepLen} were kept` };
    }
    if (st !== DECODE_OK) return { status: 'invalid', lsn, reason: decodeError() };
  } else if (a.verify && a.keepLen >= Math.min(a.totLen, VERIFY_KEEP)) {
    const st = locateMainData(a.keep, 0, a.keepLen, a.totLen, a.pgMajor);
    if (st !== DECODE_OK && st !== DECODE_NEED) return { status: 'invalid', lsn, reason: decodeError() };
  }
  return { status: 'complete', lsn, endLsn: end, totLen: a.totLen, rmid: a.rmid, info: a.info, xid: a.xid, prevLsn: a.xlPrev, events };
}

function addHead(a: Assembler, h: HeadCont, raw: Uint8Array): string | null {
  if (!Number.isNaN(a.continuesAt) && h.startLsn !== a.continuesAt) {
    return `the continuation is expected in the segment at ${formatLsn(a.continuesAt)}, not ${formatLsn(h.startLsn)}`;
  }
  if (h.overwritten) return 'aborted';
  const missing = a.totLen - a.have;
  if (h.remLen !== missing) {
    return `the continuation at ${formatLsn(h.startLsn)} has ${h.remLen} bytes left, the record needs ${missing}`;
  }
  if (h.len > h.remLen || (h.ends && h.len !== h.remLen) || (!h.ends && h.len === h.remLen)) {
    return `the continuation at ${formatLsn(h.startLsn)} is inconsistent`;
  }
  if (h.broken) return `the continuation at ${formatLsn(h.startLsn)} is cut short: ${h.broken}`;
  if (raw.length < Math.min(h.len, HEAD_RAW_MIN)) return 'the continuation lacks its first bytes';
  a.addFragment(raw, h.len, h.crc);
  a.continuesAt = h.startLsn + h.segSize;
  return null;
}

/**
 * Completes a record that started in one segment (`tail`, from that segment's scan) with the
 * continuations at the start of the following segments (`heads`, in order; null for a segment
 * that has no continuation). Pure; the result does not depend on the order the segments were
 * scanned in.
 */
export function completeSpanningRecord(tail: TailCont, heads: ReadonlyArray<HeadCont | null>, opts: { verifyBlocks?: boolean } = {}): SpanResult {
  const a = Assembler.fromTail(tail, opts.verifyBlocks ?? false);
  for (const h of heads) {
    if (a.have >= a.totLen) return { status: 'invalid', lsn: tail.lsn, reason: 'more continuations than the record needs' };
    if (h === null) return { status: 'invalid', lsn: tail.lsn, reason: 'the next segment does not continue the record' };
    const err = addHead(a, h, Buffer.from(h.raw, 'base64'));
    if (err === 'aborted') return { status: 'aborted', lsn: tail.lsn };
    if (err !== null) return { status: 'invalid', lsn: tail.lsn, reason: err };
    if (h.ends) return finish(a, h.endLsn!, h.startLsn + h.segSize);
  }
  return { status: 'incomplete', lsn: tail.lsn, tail: a.toTail(a.continuesAt) };
}

/** Folds a completed spanning record into the result of the segment where it starts. */
export function applySpan(result: ScanResult, span: SpanResult): ScanResult {
  if (span.status !== 'complete') return result;
  if (result.tailCont === null || result.tailCont.lsn !== span.lsn) {
    throw new RangeError(`applySpan: the record at ${formatLsn(span.lsn)} is not this segment's tail`);
  }
  const merged: ScanResult = { ...result, tailCont: null };
  for (const key of Object.keys(span.events) as (keyof WalEvents)[]) {
    (merged[key] as unknown[]) = [...(result[key] as unknown[]), ...(span.events[key] as unknown[])];
  }
  merged.records = result.records + 1;
  merged.firstRecordLsn = result.firstRecordLsn ?? span.lsn;
  merged.firstRecordPrev = result.firstRecordPrev ?? span.prevLsn;
  merged.lastRecordLsn = span.lsn;
  merged.summary = summarize(merged.xacts);
  return merged;
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

// ---------------------------------------------------------------------------------------------
// The segment scan

const PAGE_OK = 0;
const PAGE_ZERO = 1;
const PAGE_MISMATCH = 2;
const PAGE_BAD = 3;

export function scanSegment(buf: Uint8Array, opts: ScanOptions): ScanResult {
  const { segSize, startLsn, pgMajor } = opts;
  if (!isPowerOfTwo(segSize) || segSize < MIN_SEG_SIZE || segSize > MAX_SEG_SIZE) throw new RangeError(`scanSegment: bad segment size ${segSize}`);
  if (!Number.isSafeInteger(startLsn) || startLsn % segSize !== 0) throw new RangeError(`scanSegment: ${startLsn} is not a segment start`);
  const partial = opts.partial ?? false;
  const verify = opts.verifyBlocks ?? false;
  const onRecord = opts.onRecord;

  let u8 = buf;
  let w = wordView(u8);
  if (w === null) {
    u8 = new Uint8Array(buf); // an aligned copy
    w = wordView(u8);
    if (w === null) throw new Error('scanSegment: big-endian hosts are not supported');
  }
  const words: Int32Array = w;
  const limit = Math.min(u8.length, segSize) & ~PAGE_MASK;
  const events = emptyEvents();
  const segEnd = startLsn + segSize;

  let endPos = 0; // offset of endLsn
  let endReason: EndReason = 'segment-end';
  let endDetail = '';
  let corruption: ScanResult['corruption'] = null;
  let records = 0;
  let firstRecordLsn: number | null = null;
  let firstRecordPrev: number | null = null;
  let lastRecordLsn: number | null = null;
  let headCont: HeadCont | null = null;
  let tailCont: TailCont | null = null;
  let spanning: SpanResult | null = null;
  let pageTli = 0;
  let done = false;

  const stop = (reason: EndReason, detail: string): void => {
    endReason = reason;
    endDetail = detail;
    done = true;
  };
  /** Invalid data that is not an ordinary stale tail. */
  const bad = (offset: number, detail: string): void => {
    if (partial) stop('bad-record', detail);
    else {
      stop('corruption', detail);
      corruption = { lsn: startLsn + offset, reason: detail };
    }
  };

  const finishResult = (): ScanResult => ({
    v: 1,
    pgMajor,
    segSize,
    startLsn,
    pageTli,
    endLsn: startLsn + endPos,
    endReason,
    endDetail,
    complete: endReason === 'segment-end' || endReason === 'switch',
    firstRecordLsn,
    firstRecordPrev,
    lastRecordLsn,
    records,
    summary: summarize(events.xacts),
    ...events,
    headCont,
    tailCont,
    spanning,
    corruption,
  });

  if (limit < PAGE) {
    stop('truncated', `the file is ${u8.length} bytes, less than one WAL page`);
    return finishResult();
  }

  // ---- page 0 (long header)
  const magic0 = u16(u8, 0);
  let lastTli = u32(u8, 4);
  pageTli = lastTli;
  let pageDetail = '';
  const checkPage = (p: number): number => {
    const addr = u64(u8, p + 8);
    if (addr !== startLsn + p) {
      if (addr === 0 && u32(u8, p) === 0 && u32(u8, p + 4) === 0) {
        pageDetail = `all-zero page at ${formatLsn(startLsn + p)}`;
        return PAGE_ZERO;
      }
      pageDetail = `the page at ${formatLsn(startLsn + p)} claims address ${formatLsn(addr)} (stale data)`;
      return PAGE_MISMATCH;
    }
    const magic = u16(u8, p);
    const info = u16(u8, p + 2);
    const tli = u32(u8, p + 4);
    if (magic !== magic0) pageDetail = `page at ${formatLsn(startLsn + p)} has magic 0x${magic.toString(16)}, the segment 0x${magic0.toString(16)}`;
    else if ((info & ~XLP_ALL_FLAGS) !== 0) pageDetail = `page at ${formatLsn(startLsn + p)} has unknown flag bits 0x${info.toString(16)}`;
    else if (tli < lastTli) pageDetail = `page at ${formatLsn(startLsn + p)} has timeline ${tli} after ${lastTli}`;
    else {
      lastTli = tli;
      return PAGE_OK;
    }
    return PAGE_BAD;
  };
  const pageStop = (st: number, p: number): void => {
    if (st === PAGE_ZERO) stop('zero', pageDetail);
    else if (st === PAGE_MISMATCH) stop('page-mismatch', pageDetail);
    else bad(p, pageDetail);
  };
  const hdrSize = (info: number): number => ((info & XLP_LONG_HEADER) !== 0 ? LONG_PAGE_HEADER_SIZE : SHORT_PAGE_HEADER_SIZE);

  {
    const st = checkPage(0);
    const info0 = u16(u8, 2);
    if (st !== PAGE_OK) pageStop(st, 0);
    else if (PAGE_MAGIC_TO_MAJOR.get(magic0) !== pgMajor) {
      bad(0, `page magic 0x${magic0.toString(16).toUpperCase()} is not PostgreSQL ${pgMajor}'s`);
    } else if ((info0 & XLP_LONG_HEADER) === 0) bad(0, 'the first page lacks the long header');
    else if (u32(u8, 32) !== segSize || u32(u8, 36) !== PAGE) {
      bad(0, `the long header says segment size ${u32(u8, 32)}, block size ${u32(u8, 36)}`);
    }
    if (done) return finishResult();
  }

  let pos = LONG_PAGE_HEADER_SIZE;
  let prevLsn = -1; // unknown
  const carryAsm = opts.carry ? Assembler.fromTail(opts.carry, verify) : null;
  if (carryAsm !== null && carryAsm.pgMajor !== pgMajor) throw new RangeError('scanSegment: carry is from another major version');

  // ---- the continuation of a record from the previous segment
  const info0 = u16(u8, 2);
  if ((info0 & XLP_FIRST_IS_CONTRECORD) !== 0) {
    const remLen = u32(u8, 16);
    let rem = remLen;
    const want = carryAsm !== null && carryAsm.wantsMore() ? Math.max(HEAD_KEEP, Math.min(carryAsm.totLen - carryAsm.have, CARRY_KEEP_CAP)) : HEAD_KEEP;
    const raw = new Uint8Array(Math.min(rem, want));
    let rawLen = 0;
    let fragLen = 0;
    let fragCrc = -1;
    let p = 0;
    let hs = LONG_PAGE_HEADER_SIZE;
    let ends = false;
    let overwritten = false;
    let broken: string | null = null;
    if (remLen === 0) broken = 'the first page says a record continues but with 0 bytes left';
    else {
      for (;;) {
        const ds = p + hs;
        const chunk = Math.min(rem, PAGE - hs);
        if (rawLen < raw.length) {
          const n = Math.min(chunk, raw.length - rawLen);
          raw.set(u8.subarray(ds, ds + n), rawLen);
          rawLen += n;
        }
        const skip = fragLen < HEAD_RAW_MIN ? Math.min(chunk, HEAD_RAW_MIN - fragLen) : 0;
        if (skip < chunk) fragCrc = crc32cRaw(u8, words, ds + skip, ds + chunk, fragCrc);
        fragLen += chunk;
        rem -= chunk;
        if (rem === 0) {
          ends = true;
          pos = ds + maxAlign(chunk);
          break;
        }
        p += PAGE;
        if (p >= limit) {
          pos = p;
          if (limit < segSize) {
            broken = 'the file ends inside the record';
            stop('truncated', broken);
          }
          break;
        }
        const st = checkPage(p);
        if (st !== PAGE_OK) {
          broken = pageDetail;
          pageStop(st, p);
          break;
        }
        const inf = u16(u8, p + 2);
        if ((inf & XLP_FIRST_IS_OVERWRITE_CONTRECORD) !== 0 && (inf & XLP_FIRST_IS_CONTRECORD) === 0) {
          overwritten = true;
          pos = p + hdrSize(inf);
          break;
        }
        if ((inf & XLP_FIRST_IS_CONTRECORD) === 0 || u32(u8, p + 16) !== rem) {
          broken = `the page at ${formatLsn(startLsn + p)} does not continue the record (flags 0x${inf.toString(16)}, ${u32(u8, p + 16)} bytes left, expected ${rem})`;
          bad(p, broken);
          break;
        }
        hs = hdrSize(inf);
      }
    }
    headCont = {
      v: 1,
      startLsn,
      segSize,
      remLen,
      len: fragLen,
      ends,
      endLsn: ends ? startLsn + pos : null,
      crc: ~fragCrc >>> 0,
      raw: Buffer.from(raw.buffer, raw.byteOffset, Math.min(rawLen, HEAD_KEEP)).toString('base64'),
    };
    if (overwritten) headCont.overwritten = true;
    if (broken !== null) {
      headCont.broken = broken;
      if (!done) bad(0, broken);
    }
    if (ends) endPos = pos;
    if (carryAsm !== null) {
      const err = addHead(carryAsm, headCont, raw.subarray(0, rawLen));
      if (err === 'aborted') {
        spanning = { status: 'aborted', lsn: carryAsm.lsn };
        prevLsn = carryAsm.prevLsn ?? -1;
      } else if (err !== null) {
        spanning = { status: 'invalid', lsn: carryAsm.lsn, reason: err };
      } else if (ends) {
        spanning = finish(carryAsm, startLsn + pos, segEnd);
        if (spanning.status === 'complete') {
          prevLsn = spanning.lsn;
          if (spanning.events.switches.length > 0) {
            endPos = segSize;
            stop('switch', `XLOG_SWITCH at ${formatLsn(spanning.lsn)} (from the previous segment)`);
          }
        }
      } else if (!done) {
        spanning = { status: 'incomplete', lsn: carryAsm.lsn, tail: carryAsm.toTail(segEnd) };
        tailCont = spanning.tail;
      }
    }
    if (!ends && !done) {
      // The whole segment is the middle of one record.
      stop(limit < segSize ? 'truncated' : 'segment-end', 'the segment is inside a record that continues');
    }
    if (done) return finishResult();
  } else {
    if ((info0 & XLP_FIRST_IS_OVERWRITE_CONTRECORD) !== 0) {
      // The record that continued into this segment was aborted; the OVERWRITE_CONTRECORD record follows.
      headCont = { v: 1, startLsn, segSize, remLen: 0, len: 0, ends: false, endLsn: null, crc: 0, raw: '', overwritten: true };
      if (carryAsm !== null) {
        spanning = { status: 'aborted', lsn: carryAsm.lsn };
        prevLsn = carryAsm.prevLsn ?? -1;
      }
    } else if (carryAsm !== null) {
      spanning = { status: 'invalid', lsn: carryAsm.lsn, reason: 'this segment does not continue the record' };
    }
    endPos = pos;
  }

  // ---- the records starting in this segment
  const asm = new Assembler(pgMajor, verify);
  while (!done) {
    if ((pos & PAGE_MASK) === 0) {
      if (pos >= limit) {
        if (limit < segSize) stop('truncated', `the file ends at ${formatLsn(startLsn + pos)}`);
        else stop('segment-end', '');
        break;
      }
      const st = checkPage(pos);
      if (st !== PAGE_OK) {
        pageStop(st, pos);
        break;
      }
      const inf = u16(u8, pos + 2);
      if ((inf & XLP_FIRST_IS_CONTRECORD) !== 0) {
        bad(pos, `the page at ${formatLsn(startLsn + pos)} continues a record, but none is in progress`);
        break;
      }
      pos += hdrSize(inf);
    }
    const pageEnd = (pos & ~PAGE_MASK) + PAGE;
    const wi = pos >> 2; // records start MAXALIGNed: word reads are aligned
    const totLen = words[wi]! >>> 0;
    const lsn = startLsn + pos;
    if (totLen === 0) {
      stop('zero', `no record at ${formatLsn(lsn)} (xl_tot_len is 0)`);
      break;
    }
    if (pos + RECORD_HEADER <= pageEnd) {
      const xlPrev = (words[wi + 3]! >>> 0) * 0x100000000 + (words[wi + 2]! >>> 0);
      if (prevLsn !== -1 && xlPrev !== prevLsn) {
        stop('prev-mismatch', `the record at ${formatLsn(lsn)} has xl_prev ${formatLsn(xlPrev)}, the previous record is at ${formatLsn(prevLsn)} (stale data)`);
        break;
      }
      const rmid = u8[pos + 17]!;
      if (totLen < RECORD_HEADER || totLen > MAX_RECORD) {
        bad(pos, `invalid record length ${totLen} at ${formatLsn(lsn)}`);
        break;
      }
      if (!validRmid(rmid, pgMajor)) {
        bad(pos, `invalid resource manager id ${rmid} at ${formatLsn(lsn)}`);
        break;
      }
      if (pos + totLen <= pageEnd) {
        // Fast path: the whole record is on this page.
        let c = crc32cAligned(u8, words, pos + RECORD_HEADER, pos + totLen, -1);
        c = crc32cAligned(u8, words, pos, pos + 20, c);
        if (~c !== words[wi + 5]!) {
          bad(pos, `incorrect CRC in record at ${formatLsn(lsn)}`);
          break;
        }
        const info = u8[pos + 16]!;
        const xid = words[wi + 1]! >>> 0;
        const sw = rmid === 0 && isSwitch(rmid, info);
        const recEnd = sw ? segSize : pos + maxAlign(totLen);
        if (rmid <= 1 && isInteresting(rmid, info)) {
          const r = decodeRecord(u8, pos, totLen, totLen, rmid, info, xid, lsn, startLsn + recEnd, pgMajor, events);
          if (r !== DECODE_OK) {
            bad(pos, `record at ${formatLsn(lsn)}: ${decodeError()}`);
            break;
          }
        } else if (verify && locateMainData(u8, pos, totLen, totLen, pgMajor) !== DECODE_OK) {
          bad(pos, `record at ${formatLsn(lsn)}: ${decodeError()}`);
          break;
        }
        if (records === 0) {
          firstRecordLsn = lsn;
          firstRecordPrev = xlPrev;
        }
        records++;
        lastRecordLsn = lsn;
        prevLsn = lsn;
        endPos = recEnd;
        if (onRecord !== undefined) onRecord(lsn, startLsn + recEnd, totLen, rmid, info, xid);
        if (sw) {
          stop('switch', `XLOG_SWITCH at ${formatLsn(lsn)}`);
          break;
        }
        pos = recEnd;
        continue;
      }
    } else if (totLen < RECORD_HEADER || totLen > MAX_RECORD) {
      bad(pos, `invalid record length ${totLen} at ${formatLsn(lsn)}`);
      break;
    }

    // Slow path: the record (or its header) crosses a page boundary.
    asm.start(lsn, totLen, prevLsn === -1 ? null : prevLsn);
    asm.feed(u8, words, pos, pageEnd);
    let p = pageEnd;
    let headerChecked = asm.typed;
    let aborted = false;
    let recEnd = 0;
    for (;;) {
      if (p >= limit) {
        if (limit < segSize) stop('truncated', `the file ends inside the record at ${formatLsn(lsn)}`);
        else {
          tailCont = asm.toTail(segEnd);
          stop('segment-end', '');
        }
        break;
      }
      const st = checkPage(p);
      if (st !== PAGE_OK) {
        pageStop(st, p);
        break;
      }
      const inf = u16(u8, p + 2);
      const hs = hdrSize(inf);
      if ((inf & XLP_FIRST_IS_OVERWRITE_CONTRECORD) !== 0 && (inf & XLP_FIRST_IS_CONTRECORD) === 0) {
        // PostgreSQL abandoned this record (crash) and wrote new WAL where its continuation was.
        aborted = true;
        pos = p + hs;
        break;
      }
      const rem = totLen - asm.have;
      if ((inf & XLP_FIRST_IS_CONTRECORD) === 0 || u32(u8, p + 16) !== rem) {
        bad(p, `the page at ${formatLsn(startLsn + p)} does not continue the record at ${formatLsn(lsn)} (flags 0x${inf.toString(16)}, ${u32(u8, p + 16)} bytes left, expected ${rem})`);
        break;
      }
      const ds = p + hs;
      const chunk = Math.min(rem, PAGE - hs);
      asm.feed(u8, words, ds, ds + chunk);
      if (!headerChecked && asm.typed) {
        headerChecked = true;
        if (asm.prevLsn !== null && asm.xlPrev !== asm.prevLsn) {
          stop('prev-mismatch', `the record at ${formatLsn(lsn)} has xl_prev ${formatLsn(asm.xlPrev)}, the previous record is at ${formatLsn(asm.prevLsn)} (stale data)`);
          break;
        }
        if (!validRmid(asm.rmid, pgMajor)) {
          bad(pos, `invalid resource manager id ${asm.rmid} at ${formatLsn(lsn)}`);
          break;
        }
      }
      if (chunk === rem) {
        recEnd = ds + maxAlign(chunk);
        break;
      }
      p += PAGE;
    }
    if (aborted) continue;
    if (done) break;
    const r = finish(asm, startLsn + recEnd, segEnd, events);
    if (r.status !== 'complete') {
      bad(pos, r.status === 'invalid' || r.status === 'needs-rescan' ? r.reason : `record at ${formatLsn(lsn)} could not be completed`);
      break;
    }
    const sw = isSwitch(r.rmid, r.info);
    if (sw) recEnd = segSize;
    if (records === 0) {
      firstRecordLsn = lsn;
      firstRecordPrev = r.prevLsn;
    }
    records++;
    lastRecordLsn = lsn;
    prevLsn = lsn;
    endPos = recEnd;
    if (onRecord !== undefined) onRecord(lsn, startLsn + recEnd, totLen, r.rmid, r.info, r.xid);
    if (sw) {
      stop('switch', `XLOG_SWITCH at ${formatLsn(lsn)}`);
      break;
    }
    pos = recEnd;
  }
  return finishResult();
}
