/**
 * The documents walship's backups leave in the repository (backup/format.ts: started.json,
 * backup.json, failed.json), read back for sync and rebuild (sync.ts).
 */
import type { StorageDriver } from '../storage/driver.js';
import { damaged } from '../archive/repo-reader.js';
import { backupKey, type BackupFailure, type BackupStart, type BackupSummary } from '../backup/format.js';

/** What the repository says of one of walship's own backups. */
export interface BackupDocs {
  id: string;
  start?: BackupStart;
  summary?: BackupSummary;
  failure?: BackupFailure;
}

/** The documents of backup `id` (format.ts), from the names its directory holds. */
export async function readBackupDocs(storage: StorageDriver, id: string, names: readonly string[]): Promise<BackupDocs> {
  const doc = async <T>(name: string): Promise<T | undefined> => {
    if (!names.includes(name)) return undefined;
    const buf = await storage.get(backupKey(id, name));
    if (buf === null) return undefined;
    try {
      return JSON.parse(buf.toString('utf8')) as T;
    } catch {
      throw damaged(backupKey(id, name), storage, 'it is not valid JSON');
    }
  };
  const [start, summary, failure] = await Promise.all([doc<BackupStart>('started.json'), doc<BackupSummary>('backup.json'), doc<BackupFailure>('failed.json')]);
  return { id, ...(start && { start }), ...(summary && { summary }), ...(failure && { failure }) };
}
