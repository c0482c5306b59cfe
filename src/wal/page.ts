/**
 * WAL page headers and pre-archive segment validation (pure).
 * See docs/wal-format.md, "Pages".
 */
import { WalshipError } from '../errors.js';
import {
  WalFileName,
  XLOG_BLCKSZ,
  MIN_SEG_SIZE,
  MAX_SEG_SIZE,
  isPowerOfTwo,
  logSegValidFor,
  segNoFromLogSeg,
  formatLsn,
} from './names.js';

export const XLP_FIRST_IS_CONTRECORD = 0x1;
export const XLP_LONG_HEADER = 0x2;
export const XLP_BKP_REMOVABLE = 0x4;
export const XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x8;
export const XLP_ALL_FLAGS = 0xf;
export const SHORT_PAGE_HEADER_SIZE = 24;
export const LONG_PAGE_HEADER_SIZE = 40;

/** XLOG_PAGE_MAGIC → PostgreSQL major version. */
export const PAGE_MAGIC_TO_MAJOR: ReadonlyMap<number, number> = new Map([
  [0xd106, 13],
  [0xd10d, 14],
  [0xd110, 15],
  [0xd113, 16],
  [0xd116, 17],
  [0xd118, 18],
]);

export interface PageHeader {
  magic: number;
  info: number;
  tli: number;
  pageAddr: number;
  remLen: number;
}

export interface LongPageHeader extends PageHeader {
  /** 64-bit system identifier, as a decimal string (as pg_controldata prints it). */
  systemIdentifier: string;
  segSize: number;
  blockSize: number;
}

export function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off + 4) * 0x100000000 + buf.readUInt32LE(off);
}

export function readPageHeader(buf: Buffer, off: number): PageHeader {
  return {
    magic: buf.readUInt16LE(off),
    info: buf.readUInt16LE(off + 2),
    tli: buf.readUInt32LE(off + 4),
    pageAddr: readU64(buf, off + 8),
    remLen: buf.readUInt32LE(off + 16),
  };
}

export function readLongPageHeader(buf: Buffer): LongPageHeader {
  return {
    ...readPageHeader(buf, 0),
    systemIdentifier: buf.readBigUInt64LE(24).toString(),
    segSize: buf.readUInt32LE(32),
    blockSize: buf.readUInt32LE(36),
  };
}

export interface SegmentInfo {
  systemIdentifier: string;
  pgMajor: number;
  pageMagic: number;
  segSize: number;
  segNo: number;
  startLsn: number;
  /** Bytes from the start of the segment through the last page with a valid header. */
  validBytes: number;
  /** Pages that are all zero (the tail after an XLOG_SWITCH, or unwritten pages of a .partial). */
  zeroPages: number;
}

const ZERO_PAGE = Buffer.alloc(XLOG_BLCKSZ);

function invalid(name: string, why: string): WalshipError {
  return new WalshipError('INVALID_WAL', `${name} is not a valid WAL segment: ${why}; refusing to archive it`);
}

/**
 * Reads the long header of a segment's first page. Enough to learn the cluster (system
 * identifier, version, segment size) without validating every page.
 */
export function inspectFirstPage(buf: Buffer, file: WalFileName): LongPageHeader & { pgMajor: number } {
  if (buf.length < LONG_PAGE_HEADER_SIZE) {
    throw invalid(file.name, `file is ${buf.length} bytes, too short for a WAL page header (truncated?)`);
  }
  const h = readLongPageHeader(buf);
  const pgMajor = PAGE_MAGIC_TO_MAJOR.get(h.magic);
  if (pgMajor === undefined) {
    throw invalid(file.name, `unknown page magic 0x${h.magic.toString(16).toUpperCase()} (walship reads PostgreSQL 13-18)`);
  }
  if ((h.info & ~XLP_ALL_FLAGS) !== 0) throw invalid(file.name, `first page has unknown flag bits 0x${h.info.toString(16)}`);
  if ((h.info & XLP_LONG_HEADER) === 0) throw invalid(file.name, 'first page lacks the long header');
  if (!isPowerOfTwo(h.segSize) || h.segSize < MIN_SEG_SIZE || h.segSize > MAX_SEG_SIZE) {
    throw invalid(file.name, `implausible segment size ${h.segSize} in the page header`);
  }
  if (h.blockSize !== XLOG_BLCKSZ) throw invalid(file.name, `WAL block size ${h.blockSize}, walship supports ${XLOG_BLCKSZ}`);
  return { ...h, pgMajor };
}

/**
 * Validates a segment (or .partial) before it is archived: the long header, the size, and for
 * every non-zero page up to the end of valid data that the page header matches the file name.
 * Throws INVALID_WAL with the reason; returns what it learned.
 */
export function validateSegment(buf: Buffer, file: WalFileName): SegmentInfo {
  const v = new SegmentValidator(buf, file, buf.length);
  v.pages(buf, 0);
  return v.info();
}

/**
 * validateSegment over a file given in pieces: the first page and the file's size first (the
 * header, the size and the name are checked then), then the pieces in order (whole pages at
 * `offset`, which may repeat the first page), then `info`. Throws what validateSegment throws,
 * in the same order.
 */
export class SegmentValidator {
  private readonly h: LongPageHeader & { pgMajor: number };
  private readonly segNo: number;
  private readonly startLsn: number;
  private lastTli: number;
  private validBytes = XLOG_BLCKSZ;
  private zeroPages = 0;
  private sawZero = false;
  /** A .partial's valid data ended: the pages after it are not looked at. */
  private ended = false;

  constructor(
    first: Buffer,
    private readonly file: WalFileName,
    size: number,
  ) {
    if (file.kind !== 'segment' && file.kind !== 'partial') throw new Error('validateSegment: not a segment');
    const h = inspectFirstPage(first.length < size ? first : first.subarray(0, size), file);
    this.h = h;
    const name = file.name;
    if (size !== h.segSize) {
      throw invalid(name, `file is ${size} bytes but its header says segments are ${h.segSize} bytes (truncated or padded?)`);
    }
    if (!logSegValidFor(file.logSeg!, h.segSize)) {
      throw invalid(name, `the name is not a possible segment for ${h.segSize}-byte segments`);
    }
    this.segNo = segNoFromLogSeg(file.logSeg!, h.segSize);
    this.startLsn = this.segNo * h.segSize;
    if (h.pageAddr !== this.startLsn) {
      throw invalid(name, `its first page is for ${formatLsn(h.pageAddr)}, but the name says ${formatLsn(this.startLsn)}`);
    }
    if (h.tli > file.timeline) {
      throw invalid(name, `its first page is on timeline ${h.tli}, later than the name's timeline ${file.timeline}`);
    }
    this.lastTli = h.tli;
  }

  /** Checks the pages of `piece`, which holds the file's bytes from `offset` (a page boundary). */
  pages(piece: Buffer, offset: number): void {
    const { h, file, startLsn } = this;
    const end = Math.min(offset + piece.length, h.segSize);
    for (let off = Math.max(offset, XLOG_BLCKSZ); off + XLOG_BLCKSZ <= end && !this.ended; off += XLOG_BLCKSZ) {
      const at = off - offset;
      const page = piece.subarray(at, at + XLOG_BLCKSZ);
      const i = off / XLOG_BLCKSZ;
      if (page.readUInt32LE(0) === 0 && page.equals(ZERO_PAGE)) {
        this.zeroPages++;
        this.sawZero = true;
        continue;
      }
      const ph = readPageHeader(piece, at);
      const expected = startLsn + off;
      const problem =
        ph.magic !== h.magic
          ? `page ${i} (${formatLsn(expected)}) has magic 0x${ph.magic.toString(16)}, the first page 0x${h.magic.toString(16)}`
          : (ph.info & ~XLP_ALL_FLAGS) !== 0
            ? `page ${i} (${formatLsn(expected)}) has unknown flag bits 0x${ph.info.toString(16)}`
            : ph.pageAddr !== expected
              ? `page ${i} claims address ${formatLsn(ph.pageAddr)}, expected ${formatLsn(expected)}`
              : ph.tli < this.lastTli || ph.tli > file.timeline
                ? `page ${i} (${formatLsn(expected)}) is on timeline ${ph.tli} after timeline ${this.lastTli}`
                : this.sawZero
                  ? `page ${i} (${formatLsn(expected)}) follows an all-zero page`
                  : null;
      if (problem !== null) {
        // A .partial (or a segment still being written) may hold stale pages past the end of
        // valid WAL: for those, the first bad page is the end of valid data, not corruption.
        if (file.kind === 'partial') {
          this.ended = true;
          break;
        }
        throw invalid(file.name, problem);
      }
      this.lastTli = ph.tli;
      this.validBytes = off + XLOG_BLCKSZ;
    }
  }

  /** What the pages said, once every piece was checked. */
  info(): SegmentInfo {
    const h = this.h;
    return {
      systemIdentifier: h.systemIdentifier,
      pgMajor: h.pgMajor,
      pageMagic: h.magic,
      segSize: h.segSize,
      segNo: this.segNo,
      startLsn: this.startLsn,
      validBytes: this.validBytes,
      zeroPages: this.zeroPages,
    };
  }
}
