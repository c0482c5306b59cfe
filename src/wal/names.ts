/**
 * WAL file names and LSNs (pure). See docs/wal-format.md, "File names".
 * LSNs are carried as JavaScript numbers: exact up to 2^53 bytes (8 PiB) of WAL.
 */

export type WalFileKind = 'segment' | 'partial' | 'history' | 'backup';

export interface WalFileName {
  name: string;
  kind: WalFileKind;
  timeline: number;
  /** For segment/partial/backup: the 16 hex digits after the timeline (log id + segment id). */
  logSeg?: string;
  /** For backup files: the byte offset of the backup start within its segment. */
  backupOffset?: number;
}

const SEGMENT_RE = /^([0-9A-F]{8})([0-9A-F]{16})$/;
const PARTIAL_RE = /^([0-9A-F]{8})([0-9A-F]{16})\.partial$/;
const HISTORY_RE = /^([0-9A-F]{8})\.history$/;
const BACKUP_RE = /^([0-9A-F]{8})([0-9A-F]{16})\.([0-9A-F]{8})\.backup$/;

/** Classifies a WAL archive file name; returns null for anything PostgreSQL does not archive. */
export function parseWalFileName(name: string): WalFileName | null {
  let m = SEGMENT_RE.exec(name);
  if (m) return { name, kind: 'segment', timeline: parseInt(m[1]!, 16), logSeg: m[2]! };
  m = PARTIAL_RE.exec(name);
  if (m) return { name, kind: 'partial', timeline: parseInt(m[1]!, 16), logSeg: m[2]! };
  m = HISTORY_RE.exec(name);
  if (m) return { name, kind: 'history', timeline: parseInt(m[1]!, 16) };
  m = BACKUP_RE.exec(name);
  if (m) {
    return { name, kind: 'backup', timeline: parseInt(m[1]!, 16), logSeg: m[2]!, backupOffset: parseInt(m[3]!, 16) };
  }
  return null;
}

/** Segments per "log id" for a segment size: 0x100000000 / segSize. */
export function segmentsPerLogId(segSize: number): number {
  return 0x100000000 / segSize;
}

/** Segment number from the 16 hex digits of a segment name, for a given segment size. */
export function segNoFromLogSeg(logSeg: string, segSize: number): number {
  const log = parseInt(logSeg.slice(0, 8), 16);
  const seg = parseInt(logSeg.slice(8, 16), 16);
  return log * segmentsPerLogId(segSize) + seg;
}

/** True when the 16 hex digits are a possible segment for this segment size. */
export function logSegValidFor(logSeg: string, segSize: number): boolean {
  return parseInt(logSeg.slice(8, 16), 16) < segmentsPerLogId(segSize);
}

export function segmentName(timeline: number, segNo: number, segSize: number): string {
  const per = segmentsPerLogId(segSize);
  return hex8(timeline) + hex8(Math.floor(segNo / per)) + hex8(segNo % per);
}

export function historyName(timeline: number): string {
  return `${hex8(timeline)}.history`;
}

export function hex8(n: number): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}

/** "X/Y" → byte position. Accepts hex of any width on both sides. */
export function parseLsn(text: string): number | null {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) return null;
  return parseInt(m[1]!, 16) * 0x100000000 + parseInt(m[2]!, 16);
}

export function formatLsn(lsn: number): string {
  const hi = Math.floor(lsn / 0x100000000);
  const lo = lsn % 0x100000000;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

export function isPowerOfTwo(n: number): boolean {
  return n > 0 && Number.isInteger(n) && (n & (n - 1)) === 0;
}

export const MIN_SEG_SIZE = 1024 * 1024;
export const MAX_SEG_SIZE = 1024 * 1024 * 1024;
export const XLOG_BLCKSZ = 8192;
