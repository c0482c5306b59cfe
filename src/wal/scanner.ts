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
 *
 * This file is the scan of one segment, in its phases: the first page, the continuation of a
 * record from the previous segment, the records starting here. What it returns and the pieces of
 * spanning records are typed in scan-result.ts; spanning.ts assembles records across boundaries.
 */
import { crc32cAligned, crc32cRaw, wordView } from './crc32c.js';
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
import { emptyEvents, isInteresting, isSwitch, validRmid, locateMainData, decodeRecord, decodeError, DECODE_OK, u16, u32, u64 } from './records.js';
import { Assembler, addHead, finish } from './spanning.js';
import {
  CARRY_KEEP_CAP,
  HEAD_KEEP,
  HEAD_RAW_MIN,
  MAX_RECORD,
  PAGE,
  PAGE_MASK,
  RECORD_HEADER,
  maxAlign,
  summarize,
  type EndReason,
  type HeadCont,
  type ScanOptions,
  type ScanResult,
  type SpanResult,
  type TailCont,
} from './scan-result.js';

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
export type { TailCont, Carry, HeadCont, SpanResult, EndReason, XactSummary, ScanResult, ScanOptions } from './scan-result.js';
export { HEAD_RAW_MIN, HEAD_KEEP, summarize } from './scan-result.js';
export { completeSpanningRecord, applySpan } from './spanning.js';

const PAGE_OK = 0;
const PAGE_ZERO = 1;
const PAGE_MISMATCH = 2;
const PAGE_BAD = 3;

const hdrSize = (info: number): number => ((info & XLP_LONG_HEADER) !== 0 ? LONG_PAGE_HEADER_SIZE : SHORT_PAGE_HEADER_SIZE);

/** Returned by a phase that reached the end of the pieces given so far, more to come: it resumes with the next piece. */
const SUSPEND = -1;

/** The continuation of a record from the previous segment, while it is being read (headContinuation). */
interface HeadState {
  remLen: number;
  rem: number;
  raw: Uint8Array;
  rawLen: number;
  fragLen: number;
  fragCrc: number;
  /** The page being read, and whether its header is still to be checked. */
  p: number;
  atPage: boolean;
  hs: number;
  ends: boolean;
  overwritten: boolean;
  broken: string | null;
  pos: number;
}

/** A record crossing pages, while it is being assembled (acrossPages): where it starts, and the next page. */
interface AcrossState {
  pos: number;
  lsn: number;
  totLen: number;
  p: number;
  headerChecked: boolean;
}

/**
 * One segment's scan in progress, shared by its phases: the piece of the file held, how far
 * valid WAL reaches, and how the scan ended. Offsets are from the segment's start; the piece
 * held starts at `base` (a page boundary), so a byte at offset `o` is `u8[o - base]`.
 */
class SegmentScan {
  readonly events = emptyEvents();
  u8: Uint8Array = new Uint8Array(0);
  words: Int32Array = new Int32Array(0);
  /** Offset of the piece held, and of the end of the bytes given so far. */
  base = 0;
  next = 0;
  /** The end of the whole pages given so far (at most the segment). */
  limit = 0;
  /** Whether the piece held is the file's last. */
  last = false;
  readonly segEnd: number;
  phase: 'first' | 'head' | 'own' = 'first';
  head: HeadState | null = null;
  across: AcrossState | null = null;
  carryAsm: Assembler | null = null;
  readonly asm: Assembler;
  /** Offset of endLsn. */
  endPos = 0;
  endReason: EndReason = 'segment-end';
  endDetail = '';
  corruption: ScanResult['corruption'] = null;
  records = 0;
  firstRecordLsn: number | null = null;
  firstRecordPrev: number | null = null;
  lastRecordLsn: number | null = null;
  headCont: HeadCont | null = null;
  tailCont: TailCont | null = null;
  spanning: SpanResult | null = null;
  pageTli = 0;
  /** The first page's magic, and the highest page timeline so far: every page must agree. */
  magic0 = 0;
  lastTli = 0;
  /** Why checkPage judged the last page it did as it did. */
  pageDetail = '';
  done = false;
  /** Where the next record starts (an offset), and the LSN of the record before it (-1: unknown). */
  pos = LONG_PAGE_HEADER_SIZE;
  prevLsn = -1;

  constructor(
    readonly segSize: number,
    readonly startLsn: number,
    readonly pgMajor: number,
    readonly partial: boolean,
    readonly verify: boolean,
    readonly onRecord: ScanOptions['onRecord'],
  ) {
    this.segEnd = startLsn + segSize;
    this.asm = new Assembler(pgMajor, verify);
  }

  /** Holds the next piece of the file (whole pages unless it is the last). */
  hold(u8: Uint8Array, words: Int32Array, last: boolean): void {
    this.u8 = u8;
    this.words = words;
    this.last = last;
    this.base = this.next;
    this.next += u8.length;
    this.limit = Math.min(this.next, this.segSize) & ~PAGE_MASK;
  }

  /** Whether bytes beyond `limit` may still come: a phase that reaches it waits for them. */
  more(): boolean {
    return !this.last && this.limit < this.segSize;
  }

  stop(reason: EndReason, detail: string): void {
    this.endReason = reason;
    this.endDetail = detail;
    this.done = true;
  }

  /** Invalid data that is not an ordinary stale tail. */
  bad(offset: number, detail: string): void {
    if (this.partial) this.stop('bad-record', detail);
    else {
      this.stop('corruption', detail);
      this.corruption = { lsn: this.startLsn + offset, reason: detail };
    }
  }

  /** The page header at offset `p` (in the piece held): PAGE_OK, or what is wrong with it (in pageDetail). */
  checkPage(p: number): number {
    const u8 = this.u8;
    const q = p - this.base;
    const at = this.startLsn + p;
    const addr = u64(u8, q + 8);
    if (addr !== at) {
      if (addr === 0 && u32(u8, q) === 0 && u32(u8, q + 4) === 0) {
        this.pageDetail = `all-zero page at ${formatLsn(at)}`;
        return PAGE_ZERO;
      }
      this.pageDetail = `the page at ${formatLsn(at)} claims address ${formatLsn(addr)} (stale data)`;
      return PAGE_MISMATCH;
    }
    const magic = u16(u8, q);
    const info = u16(u8, q + 2);
    const tli = u32(u8, q + 4);
    if (magic !== this.magic0) this.pageDetail = `page at ${formatLsn(at)} has magic 0x${magic.toString(16)}, the segment 0x${this.magic0.toString(16)}`;
    else if ((info & ~XLP_ALL_FLAGS) !== 0) this.pageDetail = `page at ${formatLsn(at)} has unknown flag bits 0x${info.toString(16)}`;
    else if (tli < this.lastTli) this.pageDetail = `page at ${formatLsn(at)} has timeline ${tli} after ${this.lastTli}`;
    else {
      this.lastTli = tli;
      return PAGE_OK;
    }
    return PAGE_BAD;
  }

  /** Ends the scan at a page checkPage did not pass. */
  pageStop(st: number, p: number): void {
    if (st === PAGE_ZERO) this.stop('zero', this.pageDetail);
    else if (st === PAGE_MISMATCH) this.stop('page-mismatch', this.pageDetail);
    else this.bad(p, this.pageDetail);
  }

  /** A complete valid record starting in this segment: at `lsn`, after `xlPrev`, ending at offset `recEnd`. */
  counted(lsn: number, xlPrev: number, recEnd: number, totLen: number, rmid: number, info: number, xid: number): void {
    if (this.records === 0) {
      this.firstRecordLsn = lsn;
      this.firstRecordPrev = xlPrev;
    }
    this.records++;
    this.lastRecordLsn = lsn;
    this.prevLsn = lsn;
    this.endPos = recEnd;
    if (this.onRecord !== undefined) this.onRecord(lsn, this.startLsn + recEnd, totLen, rmid, info, xid);
  }

  result(): ScanResult {
    return {
      v: 1,
      pgMajor: this.pgMajor,
      segSize: this.segSize,
      startLsn: this.startLsn,
      pageTli: this.pageTli,
      endLsn: this.startLsn + this.endPos,
      endReason: this.endReason,
      endDetail: this.endDetail,
      complete: this.endReason === 'segment-end' || this.endReason === 'switch',
      firstRecordLsn: this.firstRecordLsn,
      firstRecordPrev: this.firstRecordPrev,
      lastRecordLsn: this.lastRecordLsn,
      records: this.records,
      summary: summarize(this.events.xacts),
      ...this.events,
      headCont: this.headCont,
      tailCont: this.tailCont,
      spanning: this.spanning,
      corruption: this.corruption,
    };
  }
}

/**
 * The scan of a segment given in pieces, in order: whole pages each, except the last (which may
 * be empty). A piece is read while `push` runs and not kept, so the caller may reuse its buffer;
 * what a record that crosses pieces needs is kept as a record crossing pages keeps it (its
 * leading bytes and a running CRC). The result is the one scanSegment gives for the whole file.
 */
export class SegmentScanner {
  private readonly s: SegmentScan;
  private ended = false;

  constructor(private readonly opts: ScanOptions) {
    const { segSize, startLsn } = opts;
    if (!isPowerOfTwo(segSize) || segSize < MIN_SEG_SIZE || segSize > MAX_SEG_SIZE) throw new RangeError(`scanSegment: bad segment size ${segSize}`);
    if (!Number.isSafeInteger(startLsn) || startLsn % segSize !== 0) throw new RangeError(`scanSegment: ${startLsn} is not a segment start`);
    this.s = new SegmentScan(segSize, startLsn, opts.pgMajor, opts.partial ?? false, opts.verifyBlocks ?? false, opts.onRecord);
  }

  /** Scans the next piece; `last` when no bytes follow it. */
  push(piece: Uint8Array, last = false): void {
    if (this.ended) throw new Error('SegmentScanner: the last piece was given already');
    this.ended = last;
    const s = this.s;
    if (!last && (piece.length & PAGE_MASK) !== 0) throw new RangeError(`SegmentScanner: a piece of ${piece.length} bytes is not whole pages`);
    if (s.done) {
      s.next += piece.length;
      return;
    }
    let u8 = piece;
    let w = wordView(u8);
    if (w === null) {
      u8 = new Uint8Array(piece); // an aligned copy
      w = wordView(u8);
      if (w === null) throw new Error('scanSegment: big-endian hosts are not supported');
    }
    s.hold(u8, w, last);
    try {
      scanHeld(s, this.opts.carry ?? null);
    } finally {
      // Nothing of the piece is read after this.
      s.u8 = new Uint8Array(0);
      s.words = new Int32Array(0);
    }
  }

  /** The scan's result, once the last piece was given. */
  result(): ScanResult {
    if (!this.ended) throw new Error('SegmentScanner: the last piece was not given');
    return this.s.result();
  }
}

export function scanSegment(buf: Uint8Array, opts: ScanOptions): ScanResult {
  const scanner = new SegmentScanner(opts);
  scanner.push(buf, true);
  return scanner.result();
}

/** Goes on with the phase the scan is in, over the piece held, until it ends or needs the next piece. */
function scanHeld(s: SegmentScan, carry: ScanOptions['carry'] | null): void {
  if (s.phase === 'first') {
    if (s.limit < PAGE) {
      if (s.more()) return;
      s.stop('truncated', `the file is ${s.next} bytes, less than one WAL page`);
      return;
    }
    firstPage(s);
    if (s.done) return;
    s.carryAsm = carry ? Assembler.fromTail(carry, s.verify) : null;
    if (s.carryAsm !== null && s.carryAsm.pgMajor !== s.pgMajor) throw new RangeError('scanSegment: carry is from another major version');
    s.phase = headContinuation(s) ? 'head' : 'own';
    if (s.done) return;
  }
  if (s.phase === 'head') {
    if (headLoop(s) === SUSPEND) return;
    s.phase = 'own';
    if (s.done) return;
  }
  ownRecords(s);
}

/** Page 0: its header, and the long header's promises (the major's magic, the segment and block sizes). */
function firstPage(s: SegmentScan): void {
  const u8 = s.u8;
  s.magic0 = u16(u8, 0);
  s.lastTli = u32(u8, 4);
  s.pageTli = s.lastTli;
  const st = s.checkPage(0);
  const info0 = u16(u8, 2);
  if (st !== PAGE_OK) s.pageStop(st, 0);
  else if (PAGE_MAGIC_TO_MAJOR.get(s.magic0) !== s.pgMajor) {
    s.bad(0, `page magic 0x${s.magic0.toString(16).toUpperCase()} is not PostgreSQL ${s.pgMajor}'s`);
  } else if ((info0 & XLP_LONG_HEADER) === 0) s.bad(0, 'the first page lacks the long header');
  else if (u32(u8, 32) !== s.segSize || u32(u8, 36) !== PAGE) {
    s.bad(0, `the long header says segment size ${u32(u8, 32)}, block size ${u32(u8, 36)}`);
  }
}

/**
 * The continuation of a record from the previous segment at the segment's start (headCont), and
 * with `s.carryAsm` (the previous segment's tailCont) that record completed (spanning). True when
 * the first page continues a record: headLoop reads it. Else leaves `s.pos` where this
 * segment's own records start.
 */
function headContinuation(s: SegmentScan): boolean {
  const { u8, startLsn, carryAsm } = s;
  const info0 = u16(u8, 2);
  if ((info0 & XLP_FIRST_IS_CONTRECORD) === 0) {
    if ((info0 & XLP_FIRST_IS_OVERWRITE_CONTRECORD) !== 0) {
      // The record that continued into this segment was aborted; the OVERWRITE_CONTRECORD record follows.
      s.headCont = { v: 1, startLsn, segSize: s.segSize, remLen: 0, len: 0, ends: false, endLsn: null, crc: 0, raw: '', overwritten: true };
      if (carryAsm !== null) {
        s.spanning = { status: 'aborted', lsn: carryAsm.lsn };
        s.prevLsn = carryAsm.prevLsn ?? -1;
      }
    } else if (carryAsm !== null) {
      s.spanning = { status: 'invalid', lsn: carryAsm.lsn, reason: 'this segment does not continue the record' };
    }
    s.endPos = LONG_PAGE_HEADER_SIZE;
    s.pos = LONG_PAGE_HEADER_SIZE;
    return false;
  }
  const remLen = u32(u8, 16);
  const want = carryAsm !== null && carryAsm.wantsMore() ? Math.max(HEAD_KEEP, Math.min(carryAsm.totLen - carryAsm.have, CARRY_KEEP_CAP)) : HEAD_KEEP;
  s.head = {
    remLen,
    rem: remLen,
    raw: new Uint8Array(Math.min(remLen, want)),
    rawLen: 0,
    fragLen: 0,
    fragCrc: -1,
    p: 0,
    atPage: false,
    hs: LONG_PAGE_HEADER_SIZE,
    ends: false,
    overwritten: false,
    broken: remLen === 0 ? 'the first page says a record continues but with 0 bytes left' : null,
    pos: LONG_PAGE_HEADER_SIZE,
  };
  return true;
}

/** Reads the continuation at the segment's start page by page (SUSPEND: it goes on in the next piece), then headFinish. */
function headLoop(s: SegmentScan): number {
  const h = s.head!;
  const { u8, words, base, limit, segSize, startLsn } = s;
  if (h.remLen !== 0) {
    for (;;) {
      if (!h.atPage) {
        const ds = h.p + h.hs;
        const chunk = Math.min(h.rem, PAGE - h.hs);
        if (h.rawLen < h.raw.length) {
          const n = Math.min(chunk, h.raw.length - h.rawLen);
          h.raw.set(u8.subarray(ds - base, ds - base + n), h.rawLen);
          h.rawLen += n;
        }
        const skip = h.fragLen < HEAD_RAW_MIN ? Math.min(chunk, HEAD_RAW_MIN - h.fragLen) : 0;
        if (skip < chunk) h.fragCrc = crc32cRaw(u8, words, ds + skip - base, ds + chunk - base, h.fragCrc);
        h.fragLen += chunk;
        h.rem -= chunk;
        if (h.rem === 0) {
          h.ends = true;
          h.pos = ds + maxAlign(chunk);
          break;
        }
        h.p += PAGE;
        h.atPage = true;
      }
      const p = h.p;
      if (p >= limit) {
        if (s.more()) return SUSPEND;
        h.pos = p;
        if (limit < segSize) {
          h.broken = 'the file ends inside the record';
          s.stop('truncated', h.broken);
        }
        break;
      }
      const st = s.checkPage(p);
      if (st !== PAGE_OK) {
        h.broken = s.pageDetail;
        s.pageStop(st, p);
        break;
      }
      const inf = u16(u8, p - base + 2);
      if ((inf & XLP_FIRST_IS_OVERWRITE_CONTRECORD) !== 0 && (inf & XLP_FIRST_IS_CONTRECORD) === 0) {
        h.overwritten = true;
        h.pos = p + hdrSize(inf);
        break;
      }
      const left = u32(u8, p - base + 16);
      if ((inf & XLP_FIRST_IS_CONTRECORD) === 0 || left !== h.rem) {
        h.broken = `the page at ${formatLsn(startLsn + p)} does not continue the record (flags 0x${inf.toString(16)}, ${left} bytes left, expected ${h.rem})`;
        s.bad(p, h.broken);
        break;
      }
      h.hs = hdrSize(inf);
      h.atPage = false;
    }
  }
  headFinish(s, h);
  s.head = null;
  return 0;
}

/** The continuation read: headCont, and with a carry the spanning record's outcome. */
function headFinish(s: SegmentScan, h: HeadState): void {
  const { startLsn, carryAsm, limit, segSize } = s;
  const { ends, pos, raw, rawLen } = h;
  const headCont: HeadCont = {
    v: 1,
    startLsn,
    segSize,
    remLen: h.remLen,
    len: h.fragLen,
    ends,
    endLsn: ends ? startLsn + pos : null,
    crc: ~h.fragCrc >>> 0,
    raw: Buffer.from(raw.buffer, raw.byteOffset, Math.min(rawLen, HEAD_KEEP)).toString('base64'),
  };
  s.headCont = headCont;
  if (h.overwritten) headCont.overwritten = true;
  if (h.broken !== null) {
    headCont.broken = h.broken;
    if (!s.done) s.bad(0, h.broken);
  }
  if (ends) s.endPos = pos;
  s.pos = pos;
  if (carryAsm !== null) {
    const err = addHead(carryAsm, headCont, raw.subarray(0, rawLen));
    if (err === 'aborted') {
      s.spanning = { status: 'aborted', lsn: carryAsm.lsn };
      s.prevLsn = carryAsm.prevLsn ?? -1;
    } else if (err !== null) {
      s.spanning = { status: 'invalid', lsn: carryAsm.lsn, reason: err };
    } else if (ends) {
      const spanning = finish(carryAsm, startLsn + pos, s.segEnd);
      s.spanning = spanning;
      if (spanning.status === 'complete') {
        s.prevLsn = spanning.lsn;
        if (spanning.events.switches.length > 0) {
          s.endPos = segSize;
          s.stop('switch', `XLOG_SWITCH at ${formatLsn(spanning.lsn)} (from the previous segment)`);
        }
      }
    } else if (!s.done) {
      const spanning: SpanResult = { status: 'incomplete', lsn: carryAsm.lsn, tail: carryAsm.toTail(s.segEnd) };
      s.spanning = spanning;
      s.tailCont = spanning.tail;
    }
  }
  if (!ends && !s.done) {
    // The whole segment is the middle of one record.
    s.stop(limit < segSize ? 'truncated' : 'segment-end', 'the segment is inside a record that continues');
  }
}

/** The records that start in this segment, from `s.pos`: each checked, the interesting ones decoded, until the scan ends or needs the next piece. */
function ownRecords(s: SegmentScan): void {
  const { u8, words, base, limit, segSize, startLsn, pgMajor, verify, events } = s;
  let pos = s.pos;
  if (s.across !== null) {
    pos = acrossLoop(s);
    if (pos === SUSPEND) return;
  }
  while (!s.done) {
    if ((pos & PAGE_MASK) === 0) {
      if (pos >= limit) {
        if (s.more()) {
          s.pos = pos;
          return;
        }
        if (limit < segSize) s.stop('truncated', `the file ends at ${formatLsn(startLsn + pos)}`);
        else s.stop('segment-end', '');
        break;
      }
      const st = s.checkPage(pos);
      if (st !== PAGE_OK) {
        s.pageStop(st, pos);
        break;
      }
      const inf = u16(u8, pos - base + 2);
      if ((inf & XLP_FIRST_IS_CONTRECORD) !== 0) {
        s.bad(pos, `the page at ${formatLsn(startLsn + pos)} continues a record, but none is in progress`);
        break;
      }
      pos += hdrSize(inf);
    }
    const pageEnd = (pos & ~PAGE_MASK) + PAGE;
    const o = pos - base; // the record's offset in the piece held
    const wi = o >> 2; // records start MAXALIGNed: word reads are aligned
    const totLen = words[wi]! >>> 0;
    const lsn = startLsn + pos;
    if (totLen === 0) {
      s.stop('zero', `no record at ${formatLsn(lsn)} (xl_tot_len is 0)`);
      break;
    }
    if (pos + RECORD_HEADER <= pageEnd) {
      const xlPrev = (words[wi + 3]! >>> 0) * 0x100000000 + (words[wi + 2]! >>> 0);
      if (s.prevLsn !== -1 && xlPrev !== s.prevLsn) {
        s.stop('prev-mismatch', `the record at ${formatLsn(lsn)} has xl_prev ${formatLsn(xlPrev)}, the previous record is at ${formatLsn(s.prevLsn)} (stale data)`);
        break;
      }
      const rmid = u8[o + 17]!;
      if (totLen < RECORD_HEADER || totLen > MAX_RECORD) {
        s.bad(pos, `invalid record length ${totLen} at ${formatLsn(lsn)}`);
        break;
      }
      if (!validRmid(rmid, pgMajor)) {
        s.bad(pos, `invalid resource manager id ${rmid} at ${formatLsn(lsn)}`);
        break;
      }
      if (pos + totLen <= pageEnd) {
        // Fast path: the whole record is on this page.
        let c = crc32cAligned(u8, words, o + RECORD_HEADER, o + totLen, -1);
        c = crc32cAligned(u8, words, o, o + 20, c);
        if (~c !== words[wi + 5]!) {
          s.bad(pos, `incorrect CRC in record at ${formatLsn(lsn)}`);
          break;
        }
        const info = u8[o + 16]!;
        const xid = words[wi + 1]! >>> 0;
        const sw = rmid === 0 && isSwitch(rmid, info);
        const recEnd = sw ? segSize : pos + maxAlign(totLen);
        if (rmid <= 1 && isInteresting(rmid, info)) {
          const r = decodeRecord(u8, o, totLen, totLen, rmid, info, xid, lsn, startLsn + recEnd, pgMajor, events);
          if (r !== DECODE_OK) {
            s.bad(pos, `record at ${formatLsn(lsn)}: ${decodeError()}`);
            break;
          }
        } else if (verify && locateMainData(u8, o, totLen, totLen, pgMajor) !== DECODE_OK) {
          s.bad(pos, `record at ${formatLsn(lsn)}: ${decodeError()}`);
          break;
        }
        s.counted(lsn, xlPrev, recEnd, totLen, rmid, info, xid);
        if (sw) {
          s.stop('switch', `XLOG_SWITCH at ${formatLsn(lsn)}`);
          break;
        }
        pos = recEnd;
        continue;
      }
    } else if (totLen < RECORD_HEADER || totLen > MAX_RECORD) {
      s.bad(pos, `invalid record length ${totLen} at ${formatLsn(lsn)}`);
      break;
    }
    pos = acrossPages(s, pos, pageEnd, lsn, totLen);
    if (pos === SUSPEND) return;
  }
}

/**
 * Slow path: the record at offset `pos` (or its header) crosses a page boundary. Assembles it
 * across the pages it covers (acrossLoop), checks and counts it.
 */
function acrossPages(s: SegmentScan, pos: number, pageEnd: number, lsn: number, totLen: number): number {
  s.asm.start(lsn, totLen, s.prevLsn === -1 ? null : s.prevLsn);
  s.asm.feed(s.u8, s.words, pos - s.base, pageEnd - s.base);
  s.across = { pos, lsn, totLen, p: pageEnd, headerChecked: s.asm.typed };
  return acrossLoop(s);
}

/**
 * The pages of the record being assembled, from `s.across.p`. Returns the offset after the
 * record (after an aborted one: where the WAL written over its continuation starts), SUSPEND when
 * it goes on in the next piece; the scan may have ended.
 */
function acrossLoop(s: SegmentScan): number {
  const { u8, words, base, limit, segSize, startLsn, pgMajor, asm } = s;
  const a = s.across!;
  const { pos, lsn, totLen } = a;
  let recEnd = 0;
  for (;;) {
    const p = a.p;
    if (p >= limit) {
      if (s.more()) return SUSPEND;
      s.across = null;
      if (limit < segSize) s.stop('truncated', `the file ends inside the record at ${formatLsn(lsn)}`);
      else {
        s.tailCont = asm.toTail(s.segEnd);
        s.stop('segment-end', '');
      }
      return pos;
    }
    s.across = null; // until it is known to go on
    const st = s.checkPage(p);
    if (st !== PAGE_OK) {
      s.pageStop(st, p);
      return pos;
    }
    const inf = u16(u8, p - base + 2);
    const hs = hdrSize(inf);
    if ((inf & XLP_FIRST_IS_OVERWRITE_CONTRECORD) !== 0 && (inf & XLP_FIRST_IS_CONTRECORD) === 0) {
      // PostgreSQL abandoned this record (crash) and wrote new WAL where its continuation was.
      return p + hs;
    }
    const rem = totLen - asm.have;
    const left = u32(u8, p - base + 16);
    if ((inf & XLP_FIRST_IS_CONTRECORD) === 0 || left !== rem) {
      s.bad(p, `the page at ${formatLsn(startLsn + p)} does not continue the record at ${formatLsn(lsn)} (flags 0x${inf.toString(16)}, ${left} bytes left, expected ${rem})`);
      return pos;
    }
    const ds = p + hs;
    const chunk = Math.min(rem, PAGE - hs);
    asm.feed(u8, words, ds - base, ds - base + chunk);
    if (!a.headerChecked && asm.typed) {
      a.headerChecked = true;
      if (asm.prevLsn !== null && asm.xlPrev !== asm.prevLsn) {
        s.stop('prev-mismatch', `the record at ${formatLsn(lsn)} has xl_prev ${formatLsn(asm.xlPrev)}, the previous record is at ${formatLsn(asm.prevLsn)} (stale data)`);
        return pos;
      }
      if (!validRmid(asm.rmid, pgMajor)) {
        s.bad(pos, `invalid resource manager id ${asm.rmid} at ${formatLsn(lsn)}`);
        return pos;
      }
    }
    if (chunk === rem) {
      recEnd = ds + maxAlign(chunk);
      break;
    }
    a.p = p + PAGE;
    s.across = a;
  }
  const r = finish(asm, startLsn + recEnd, s.segEnd, s.events);
  if (r.status !== 'complete') {
    s.bad(pos, r.status === 'invalid' || r.status === 'needs-rescan' ? r.reason : `record at ${formatLsn(lsn)} could not be completed`);
    return pos;
  }
  const sw = isSwitch(r.rmid, r.info);
  if (sw) recEnd = segSize;
  s.counted(lsn, r.prevLsn, recEnd, totLen, r.rmid, r.info, r.xid);
  if (sw) s.stop('switch', `XLOG_SWITCH at ${formatLsn(lsn)}`);
  return recEnd;
}
