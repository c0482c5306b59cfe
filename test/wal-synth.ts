/**
 * A tiny WAL writer for tests: lays records out in pages and segments the way PostgreSQL does
 * (long/short page headers, XLP_FIRST_IS_CONTRECORD + xlp_rem_len, MAXALIGN, xl_prev, CRC-32C),
 * so the scanner's edge cases (split headers, records spanning several segments, aborted
 * contrecords, other major versions) can be produced on demand. Written from the format
 * description in docs/wal-format.md, independently of the scanner.
 */
import { crc32c } from '../src/wal/crc32c.js';
import { segmentName } from '../src/wal/names.js';

const PAGE = 8192;
export const MAGIC: Record<number, number> = { 13: 0xd106, 14: 0xd10d, 15: 0xd110, 16: 0xd113, 17: 0xd116, 18: 0xd118 };
const maxAlign = (n: number) => (n + 7) & ~7;

export interface SynthRecord {
  lsn: number;
  endLsn: number;
  totLen: number;
  rmid: number;
  info: number;
  xid: number;
}

export class WalWriter {
  readonly segs = new Map<number, Buffer>();
  pos: number;
  prevLsn = 0;
  readonly written: SynthRecord[] = [];
  /** Flags to OR into the next page header written (e.g. XLP_FIRST_IS_OVERWRITE_CONTRECORD). */
  private nextPageFlags = 0;

  constructor(
    readonly segSize: number,
    startLsn: number,
    readonly pgMajor = 15,
    readonly tli = 1,
  ) {
    this.pos = startLsn;
    this.prevLsn = startLsn - 4096; // arbitrary "previous" record before the first one
  }

  private seg(lsn: number): Buffer {
    const no = Math.floor(lsn / this.segSize);
    let b = this.segs.get(no);
    if (!b) {
      b = Buffer.alloc(this.segSize);
      this.segs.set(no, b);
    }
    return b;
  }

  /** Writes the header of the page starting at `lsn`; returns its size. */
  private pageHeader(lsn: number, remLen: number): number {
    const b = this.seg(lsn);
    const off = lsn % this.segSize;
    const long = off === 0;
    const info = (long ? 0x2 : 0) | (remLen > 0 ? 0x1 : 0) | this.nextPageFlags;
    this.nextPageFlags = 0;
    b.writeUInt16LE(MAGIC[this.pgMajor]!, off);
    b.writeUInt16LE(info, off + 2);
    b.writeUInt32LE(this.tli, off + 4);
    b.writeUInt32LE(lsn % 0x100000000, off + 8);
    b.writeUInt32LE(Math.floor(lsn / 0x100000000), off + 12);
    b.writeUInt32LE(remLen, off + 16);
    if (long) {
      b.writeBigUInt64LE(7000000000000000001n, off + 24);
      b.writeUInt32LE(this.segSize, off + 32);
      b.writeUInt32LE(PAGE, off + 36);
      return 40;
    }
    return 24;
  }

  /** Lays out raw record bytes at the insert position; `stopAfter` bytes only (aborted record). */
  private place(rec: Buffer, stopAfter = rec.length): { lsn: number; endLsn: number } {
    if (this.pos % PAGE === 0) this.pos += this.pageHeader(this.pos, 0);
    const lsn = this.pos;
    let i = 0;
    let p = this.pos;
    for (;;) {
      const pageEnd = p - (p % PAGE) + PAGE;
      const n = Math.min(rec.length - i, pageEnd - p, stopAfter - i);
      rec.copy(this.seg(p), p % this.segSize, i, i + n);
      i += n;
      p += n;
      if (i === rec.length || i === stopAfter) break;
      p += this.pageHeader(p, rec.length - i);
    }
    this.pos = maxAlign(p);
    return { lsn, endLsn: this.pos };
  }

  /** Builds a record: header, block headers given raw, main data, CRC. */
  static build(rmid: number, info: number, xid: number, prev: number, main: Buffer, opts: { blockHeaders?: Buffer; blockData?: Buffer } = {}): Buffer {
    const bh = opts.blockHeaders ?? Buffer.alloc(0);
    const bd = opts.blockData ?? Buffer.alloc(0);
    const mh = main.length === 0 ? Buffer.alloc(0) : main.length < 256 ? Buffer.from([255, main.length]) : Buffer.concat([Buffer.from([254]), u32b(main.length)]);
    const rec = Buffer.concat([Buffer.alloc(24), bh, mh, bd, main]);
    rec.writeUInt32LE(rec.length, 0);
    rec.writeUInt32LE(xid, 4);
    rec.writeUInt32LE(prev % 0x100000000, 8);
    rec.writeUInt32LE(Math.floor(prev / 0x100000000), 12);
    rec[16] = info;
    rec[17] = rmid;
    let c = crc32c(rec, 0, 24, rec.length);
    c = crc32c(rec, c, 0, 20);
    rec.writeUInt32LE(c, 20);
    return rec;
  }

  record(rmid: number, info: number, xid: number, main: Buffer, opts: { blockHeaders?: Buffer; blockData?: Buffer } = {}): SynthRecord {
    const rec = WalWriter.build(rmid, info, xid, this.prevLsn, main, opts);
    const { lsn, endLsn } = this.place(rec);
    this.prevLsn = lsn;
    const r = { lsn, endLsn, totLen: rec.length, rmid, info, xid };
    if (rmid === 0 && (info & 0xf0) === 0x40) {
      // XLOG_SWITCH: the rest of the segment stays zero; the next record starts in the next segment.
      const next = Math.ceil(endLsn / this.segSize) * this.segSize;
      r.endLsn = next;
      this.pos = next;
    }
    this.written.push(r);
    return r;
  }

  commit(xid: number, time: number, extra: Buffer = Buffer.alloc(0), info = 0x00): SynthRecord {
    const main = Buffer.concat([i64b(time), extra]);
    return this.record(1, info, xid, main);
  }

  restorePoint(name: string, time: number): SynthRecord {
    const main = Buffer.alloc(72);
    main.writeBigInt64LE(BigInt(time), 0);
    main.write(name, 8, 'utf8');
    main.write('garbage-after-nul', 8 + name.length + 1, 'latin1');
    return this.record(0, 0x70, 0, main);
  }

  switchWal(): SynthRecord {
    return this.record(0, 0x40, 0, Buffer.alloc(0));
  }

  /** An XLOG NOOP record of exactly `totLen` bytes (>= 24, not 25). */
  noop(totLen: number): SynthRecord {
    if (totLen === 24) return this.record(0, 0x20, 0, Buffer.alloc(0));
    const n = totLen - 24 - (totLen - 26 < 256 ? 2 : 5);
    return this.record(0, 0x20, 0, Buffer.alloc(n, 0xab));
  }

  /** Pads with NOOP records so that the next record starts exactly at `target`. */
  fillTo(target: number): void {
    for (;;) {
      let start = this.pos;
      if (start % PAGE === 0) start += start % this.segSize === 0 ? 40 : 24;
      if (start === target) return;
      if (start > target || target % 8 !== 0) throw new Error(`fillTo: cannot reach ${target} from ${this.pos}`);
      const pageEnd = start - (start % PAGE) + PAGE;
      const d = target - start;
      if (target < pageEnd) {
        if (d === 24 || d >= 32) {
          this.noop(d);
          return;
        }
        throw new Error(`fillTo: ${target} is ${d} bytes away on the same page`);
      }
      const room = pageEnd - start;
      this.noop(room === 24 || room >= 32 ? room : room + 48);
    }
  }

  /**
   * A record cut off after `firstBytes` bytes at a page boundary, as after a crash: the next
   * page gets XLP_FIRST_IS_OVERWRITE_CONTRECORD and an OVERWRITE_CONTRECORD record whose
   * xl_prev is the last complete record.
   */
  abortedRecord(totLen: number, time: number): { abortedLsn: number; overwrite: SynthRecord } {
    const main = Buffer.alloc(totLen - 29, 0xcd);
    const rec = WalWriter.build(0, 0x20, 0, this.prevLsn, main);
    const start = this.pos % PAGE === 0 ? this.pos + (this.pos % this.segSize === 0 ? 40 : 24) : this.pos;
    const room = start - (start % PAGE) + PAGE - start;
    if (rec.length <= room) throw new Error('abortedRecord: record must cross a page');
    const { lsn } = this.place(rec, room);
    this.pos = lsn - (lsn % PAGE) + PAGE; // the missing continuation page
    this.nextPageFlags = 0x8;
    const ow = Buffer.alloc(16);
    ow.writeUInt32LE(lsn % 0x100000000, 0);
    ow.writeUInt32LE(Math.floor(lsn / 0x100000000), 4);
    ow.writeBigInt64LE(BigInt(time), 8);
    const overwrite = this.record(0, 0xd0, 0, ow);
    return { abortedLsn: lsn, overwrite };
  }

  /** Segments written so far, in order (names on this writer's timeline). */
  segments(): { name: string; startLsn: number; buf: Buffer }[] {
    return [...this.segs.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([no, buf]) => ({ name: segmentName(this.tli, no, this.segSize), startLsn: no * this.segSize, buf }));
  }
}

export function u32b(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}
export function i64b(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(n));
  return b;
}
