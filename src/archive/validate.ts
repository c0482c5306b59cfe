/**
 * What archive-push accepts as a WAL file, by name and by content, before anything is stored:
 * the kind its name says; for a segment or .partial, headers and pages that belong to it
 * (wal/page.ts); for a .history or .backup file, content that parses. Also what reading the
 * repository back (repo-reader.ts) takes a history or backup file's content from.
 */
import { basename } from 'node:path';
import { WalshipError } from '../errors.js';
import { parseWalFileName, type WalFileName } from '../wal/names.js';
import { validateSegment, type SegmentInfo } from '../wal/page.js';
import { parseBackupHistoryFile, parseHistoryFile } from '../wal/history.js';
import type { ScanResult } from '../wal/scanner.js';

export function classifyOrRefuse(path: string): WalFileName {
  const name = basename(path);
  const file = parseWalFileName(name);
  if (!file) {
    throw new WalshipError(
      'NOT_WAL',
      `"${name}" is not a WAL file name (expected a 24-hex-digit segment, a .partial, a .history or a .backup file); nothing was archived`,
    );
  }
  return file;
}

/** What the catalog needs of a file, learned by validating it. Throws INVALID_WAL. */
export interface Validated {
  segment?: SegmentInfo;
  history?: ReturnType<typeof parseHistoryFile>;
  backup?: ReturnType<typeof parseBackupHistoryFile>;
  /** The records of a segment or .partial (src/catalog/scan-store.ts). */
  /** `raw`: the file, when it was read whole (a record spanning into it may need it read again). */
  scan?: { result: ScanResult; raw?: Buffer };
}

export function validateFile(file: WalFileName, raw: Buffer): Validated {
  switch (file.kind) {
    case 'segment':
    case 'partial':
      return { segment: validateSegment(raw, file) };
    case 'history': {
      const history = parseHistoryFile(raw.toString('utf8'));
      const last = history?.[history.length - 1];
      if (!history || !last || last.parent >= file.timeline) {
        throw new WalshipError('INVALID_WAL', `${file.name} is not a valid timeline history file; refusing to archive it`);
      }
      return { history };
    }
    case 'backup': {
      const backup = parseBackupHistoryFile(raw.toString('utf8'));
      if (!backup) throw new WalshipError('INVALID_WAL', `${file.name} is not a valid backup history file; refusing to archive it`);
      return { backup };
    }
  }
}
