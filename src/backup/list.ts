/** `walship backups`: the base backups the catalog knows, newest last. */
import { formatLsn } from '../wal/names.js';
import type { Catalog } from '../catalog/catalog.js';

export interface BackupListing {
  name: string;
  source: 'walship' | 'history-file';
  label: string;
  status: string;
  restorable: boolean;
  startLsn: string;
  stopLsn: string;
  startTimeline: number;
  stopTimeline: number;
  startTime: string | null;
  stopTime: string | null;
  pgVersion: string | null;
  rawBytes: number | null;
  storedBytes: number | null;
  files: number | null;
  durationMs: number | null;
  error: string | null;
}

export function listBackups(cat: Catalog): BackupListing[] {
  return cat.backups().map((r) => ({
    name: r.name,
    source: r.source,
    label: r.label,
    status: r.status,
    // Only walship's own complete backups hold data in the repository.
    restorable: r.source === 'walship' && r.status === 'complete',
    startLsn: formatLsn(r.start_lsn),
    stopLsn: formatLsn(r.stop_lsn),
    startTimeline: r.start_timeline,
    stopTimeline: r.stop_timeline,
    startTime: r.start_time ?? r.start_time_text,
    stopTime: r.stop_time ?? r.stop_time_text,
    pgVersion: r.pg_version,
    rawBytes: r.raw_size,
    storedBytes: r.stored_size,
    files: r.files,
    durationMs: r.duration_ms,
    error: r.error,
  }));
}

export function renderBackups(rows: BackupListing[]): string {
  if (rows.length === 0) return 'no backups\n';
  const lines = ['NAME                          SOURCE        STATUS    STOP LSN      STOP TIME                 SIZE      LABEL'];
  for (const b of rows) {
    const size = b.storedBytes !== null ? `${(b.storedBytes / 1048576).toFixed(1)} MiB` : '-';
    lines.push(
      `${b.name.padEnd(30)}${b.source.padEnd(14)}${b.status.padEnd(10)}${b.stopLsn.padEnd(14)}${(b.stopTime ?? '-').padEnd(26)}${size.padEnd(10)}${b.label}` +
        (b.error ? `\n    error: ${b.error}` : ''),
    );
  }
  return lines.join('\n') + '\n';
}
