/**
 * walship's own backups in the catalog, from the documents a backup leaves in the repository
 * (format.ts): `started.json` (running), `backup.json` (complete), `failed.json` (failed). Used
 * by `walship backup` as it goes and by sync/rebuild (sync/sync.ts) reading them back, so both
 * write the same row. Call inside a catalog write transaction.
 */
import { parseLsn } from '../wal/names.js';
import type { Catalog } from '../catalog/catalog.js';
import type { BackupFailure, BackupStart, BackupSummary } from './format.js';

export function recordBackupStart(cat: Catalog, s: BackupStart): void {
  const lsn = parseLsn(s.startLsn)!;
  cat.upsertBackup({
    name: s.id,
    source: 'walship',
    label: s.label,
    start_lsn: lsn,
    stop_lsn: lsn,
    checkpoint_lsn: null,
    start_timeline: s.startTimeline,
    stop_timeline: s.startTimeline,
    start_time: s.startTime,
    stop_time: null,
    start_time_text: null,
    stop_time_text: null,
    status: 'running',
  });
}

export function recordBackupComplete(cat: Catalog, s: BackupSummary): void {
  cat.upsertBackup({
    name: s.id,
    source: 'walship',
    label: s.label,
    start_lsn: parseLsn(s.startLsn)!,
    stop_lsn: parseLsn(s.stopLsn)!,
    checkpoint_lsn: s.checkpointLsn ? parseLsn(s.checkpointLsn) : null,
    start_timeline: s.startTimeline,
    stop_timeline: s.stopTimeline,
    start_time: s.startTime,
    stop_time: s.stopTime,
    start_time_text: null,
    stop_time_text: null,
    status: 'complete',
  });
  cat.setBackupOutcome(s.id, 'complete', { pgVersion: s.pgVersion, rawBytes: s.rawBytes, storedBytes: s.storedBytes, durationMs: s.durationMs, files: s.files, error: null });
}

/** A failed backup: its start's row, marked failed with the error. */
export function recordBackupFailure(cat: Catalog, start: BackupStart, f: Pick<BackupFailure, 'error'>): void {
  recordBackupStart(cat, start);
  cat.setBackupOutcome(start.id, 'failed', { error: f.error });
}
