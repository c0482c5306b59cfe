/**
 * Indexing one archived file in the catalog, inside the caller's write transaction: its
 * wal_files row; for a segment or .partial, what its records say (scan-store.ts); for a .history
 * file, the timeline it creates; for a .backup file, the backup it describes. archive-push indexes
 * what it has just stored, sync and rebuild (sync/sync.ts) what they read back from the
 * repository: the same rows either way, which is what makes the catalog a cache of the repository.
 */
import type { WalFileName } from '../wal/names.js';
import type { BackupHistory, HistoryEntry } from '../wal/history.js';
import type { ScanFacts } from '../wal/scan-record.js';
import type { Catalog } from './catalog.js';
import { storeScan, type SegmentPlace } from './scan-store.js';

export interface ArchivedFile {
  file: WalFileName;
  rawSize: number;
  storedSize: number;
  sha256: string;
  /** SHA-256 of the object's compressed data; null for objects of early walship. */
  bodySha256: string | null;
  objectKey: string;
  pushedAt: string;
  /** Segments and .partial files: where the file is, and what its records say (absent: not read). */
  segment?: SegmentPlace;
  scan?: ScanFacts;
  /** The scan as the object's metadata carries it (archive/envelope.ts), kept for index blocks. */
  scanRecord?: string | null;
  /** The file itself, when at hand: a record spanning into it that needs it rescanned is completed. */
  raw?: Buffer;
  history?: HistoryEntry[];
  backup?: BackupHistory;
}

export function indexArchivedFile(cat: Catalog, a: ArchivedFile): void {
  const { file, segment: seg } = a;
  cat.upsertWalFile({
    name: file.name,
    kind: file.kind,
    timeline: file.timeline,
    seg_no: seg ? seg.segNo : null,
    start_lsn: seg ? seg.startLsn : null,
    end_lsn: seg ? seg.startLsn + seg.segSize : null,
    raw_size: a.rawSize,
    stored_size: a.storedSize,
    sha256: a.sha256,
    body_sha256: a.bodySha256,
    compression: 'zstd',
    object_key: a.objectKey,
    pushed_at: a.pushedAt,
    scan_record: a.scanRecord ?? null,
  });
  if (seg && a.scan) storeScan(cat, file, seg, a.scan, a.raw);
  const last = a.history?.[a.history.length - 1];
  if (last) {
    cat.upsertTimeline({ timeline: file.timeline, parent: last.parent, switchpoint: last.switchpoint, reason: last.reason, history_file: file.name });
  }
  const b = a.backup;
  if (b) {
    cat.upsertBackup({
      name: file.name,
      source: 'history-file',
      label: b.label,
      start_lsn: b.startLsn,
      stop_lsn: b.stopLsn,
      checkpoint_lsn: b.checkpointLsn,
      start_timeline: b.startTimeline,
      stop_timeline: b.stopTimeline,
      start_time: b.startTime,
      stop_time: b.stopTime,
      start_time_text: b.startTimeText,
      stop_time_text: b.stopTimeText,
      status: 'complete',
    });
  }
}
