/** The scan of one whole WAL file as push, verify and the repository reader need it: every record read, a damaged or unfinished file refused. */
import { WalshipError } from '../errors.js';
import { formatLsn, type WalFileName } from './names.js';
import type { SegmentInfo } from './page.js';
import { scanSegment, type ScanOptions, type ScanResult } from './scanner.js';
import { unfinishedSegment } from './complete.js';

/**
 * Reads every record of a validated segment or .partial. A damaged record inside the valid
 * data (CRC mismatch, impossible header), or a segment whose valid WAL stops short of its end
 * without an XLOG_SWITCH (wal/complete.ts), refuses the file: INVALID_WAL, nothing is stored.
 * With `archived` (an object read back from the repository, which older walship may have stored
 * unfinished), a damaged record is OBJECT_CORRUPT and an unfinished segment is read as it is.
 */
export function scanArchivedFile(raw: Buffer, file: WalFileName, seg: SegmentInfo, opts: { archived?: boolean } = {}): ScanResult {
  let scan: ScanResult;
  try {
    scan = scanSegment(raw, scanOptionsFor(file, seg));
  } catch (err) {
    throw refusal(file, opts)(`cannot be read as WAL (${(err as Error).message})`, '');
  }
  return judgeScan(scan, file, opts);
}

/** What scanning `file` takes (a .partial's invalid tail is its end, not damage). */
export function scanOptionsFor(file: WalFileName, seg: Pick<SegmentInfo, 'segSize' | 'startLsn' | 'pgMajor'>): ScanOptions {
  return { segSize: seg.segSize, startLsn: seg.startLsn, pgMajor: seg.pgMajor, partial: file.kind === 'partial' };
}

const refusal = (file: WalFileName, opts: { archived?: boolean }) => (what: string, advice: string) =>
  opts.archived ? new WalshipError('OBJECT_CORRUPT', `the archived ${file.name} ${what}`) : new WalshipError('INVALID_WAL', `${file.name} ${what}; refusing to archive it${advice}`);

/** The verdict of scanArchivedFile on a scan of the whole file (whole or in pieces): the scan, or what refuses the file. */
export function judgeScan(scan: ScanResult, file: WalFileName, opts: { archived?: boolean } = {}): ScanResult {
  if (scan.corruption) throw refusal(file, opts)(`is damaged: ${scan.corruption.reason} at ${formatLsn(scan.corruption.lsn)}`, ' (check the disk and the server log)');
  if (opts.archived) return scan;
  const unfinished = unfinishedSegment(file, scan);
  if (unfinished !== null) {
    throw new WalshipError('INVALID_WAL', `${file.name} is incomplete: ${unfinished}; refusing to archive it (check the disk, and where the file came from)`);
  }
  return scan;
}
