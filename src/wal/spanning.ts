/**
 * Records that cross page and segment boundaries: an Assembler collects a record's bytes piece by
 * piece (a running CRC over them, and only the leading bytes decoding needs), `finish` checks and
 * decodes the completed record. scanner.ts uses it for a record that crosses a page; a record
 * that crosses into the next segment is completed by completeSpanningRecord from the two scans'
 * small pieces (tailCont and headCont), in whichever order the segments arrived, and folded into
 * the scan of the segment it starts in by applySpan.
 */
import { crc32cRaw, crc32cCombine } from './crc32c.js';
import { formatLsn } from './names.js';
import { type WalEvents, emptyEvents, isInteresting, isSwitch, validRmid, locateMainData, decodeRecord, decodeError, decodeNeed, decodeUsed, DECODE_OK, DECODE_NEED, u32, u64 } from './records.js';
import { HEAD_RAW_MIN, RECORD_HEADER, VERIFY_KEEP, summarize, type HeadCont, type ScanResult, type SpanResult, type TailCont } from './scan-result.js';

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
export class Assembler {
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
export function finish(a: Assembler, endLsn: number, switchEnd: number, events: WalEvents = emptyEvents()): SpanResult {
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

export function addHead(a: Assembler, h: HeadCont, raw: Uint8Array): string | null {
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
