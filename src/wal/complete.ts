/**
 * Whether a scanned segment is one PostgreSQL can hand to archive_command as finished (pure).
 *
 * PostgreSQL archives a segment (a name without `.partial`) only once it has written it to the
 * end: either records fill it (the last one may continue into the next segment), or an
 * XLOG_SWITCH record ends it and the rest is padding (pg_switch_wal(), archive_timeout, a backup's
 * start and stop, shutdown). What ends earlier, as all-zero pages or a record of length 0 with no
 * switch before them, was cut short: a torn copy, or zeros written over real WAL. Recovery would
 * stop replaying at that point and take it for the end of the WAL ("invalid magic number 0000"),
 * so archiving it would lose everything after it without an error anywhere. `.partial` files
 * (the old timeline's last segment at promotion) end early by nature and are not held to this.
 * See docs/wal-format.md, "What a finished segment looks like".
 */
import { formatLsn, type WalFileName } from './names.js';
import type { ScanResult } from './scanner.js';

/** Why the scanned `file` is not a finished segment, or null when it is one (or not a segment). */
export function unfinishedSegment(file: WalFileName, scan: ScanResult): string | null {
  if (file.kind !== 'segment' || scan.complete) return null;
  const offset = scan.endLsn - scan.startLsn;
  const why = scan.endDetail ? ` (${scan.endDetail})` : '';
  return (
    `valid WAL ends at offset ${offset} of ${scan.segSize} (LSN ${formatLsn(scan.endLsn)})${why}, ` +
    'but a finished segment holds WAL to its end or ends with an XLOG_SWITCH record: this copy was cut short'
  );
}
