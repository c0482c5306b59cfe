/**
 * scanSegment for the scanner's tests, with a check that the scan of the same file given in
 * pieces (SegmentScanner) agrees: for every test segment, in pieces of one page, three pages and
 * 64 KiB (the last piece what is left, a part page included), the result and the records
 * reported are the very ones of the whole file's scan.
 */
import { expect } from 'vitest';
import { SegmentScanner, scanSegment as scanWhole, type ScanOptions, type ScanResult } from '../../src/wal/scanner.js';

const PAGE = 8192;
const PIECES = [PAGE, 3 * PAGE, 64 * 1024];

function inPieces(buf: Uint8Array, opts: ScanOptions, piece: number): { result: ScanResult; records: unknown[] } {
  const records: unknown[] = [];
  const scanner = new SegmentScanner({ ...opts, onRecord: (...a) => records.push(a) });
  let off = 0;
  while (buf.length - off > piece) {
    scanner.push(buf.subarray(off, off + piece));
    off += piece;
  }
  scanner.push(buf.subarray(off), true);
  return { result: scanner.result(), records };
}

export function scanSegment(buf: Uint8Array, opts: ScanOptions): ScanResult {
  const records: unknown[] = [];
  const whole = scanWhole(buf, { ...opts, onRecord: (...a) => { records.push(a); opts.onRecord?.(...a); } });
  for (const piece of PIECES) {
    if (piece >= buf.length) continue;
    const got = inPieces(buf, opts, piece);
    expect(got.result, `the scan in pieces of ${piece} bytes`).toEqual(whole);
    expect(got.records, `the records of the scan in pieces of ${piece} bytes`).toEqual(records);
  }
  return whole;
}
