/**
 * What `walship expire` removed from the repository, as the catalog learns it: from the expire
 * that ran with this catalog, or from the record it left in the repository (expire/<id>.json),
 * which sync reads on every other host. Applying a record forgets the rows of what it removed;
 * the records applied are kept, so that sync and rebuild leave out anything an interrupted
 * expire left behind of what it had set out to remove.
 */
import type { Catalog } from './catalog.js';
import { restretchSql } from './schema.js';

/** One expire's removals (its record in the repository, and the catalog's `expirations` row). */
export interface Expiry {
  /** The record's key in the repository. */
  key: string;
  at: string;
  /** Every WAL file of every timeline in segments numbered below this (not history files); null: none. */
  walBelowSeg: number | null;
  /** walship backups (their ids). */
  backups: string[];
  /** Other archived files (backup history files), by name. */
  files: string[];
}

/** Everything the applied records removed, to leave out of what sync and rebuild list. */
export interface Expired {
  walBelowSeg: number | null;
  backups: Set<string>;
  files: Set<string>;
  /** The newest record applied (records sort by key, which starts with their time). */
  lastKey: string | null;
}

export function expiredOf(cat: Catalog, more: readonly Expiry[] = []): Expired {
  const rows = cat.db.prepare('SELECT key, wal_below_seg, backups, files FROM expirations ORDER BY key').all() as {
    key: string;
    wal_below_seg: number | null;
    backups: string;
    files: string;
  }[];
  const out: Expired = { walBelowSeg: null, backups: new Set(), files: new Set(), lastKey: null };
  const add = (key: string, below: number | null, backups: string[], files: string[]) => {
    if (below !== null) out.walBelowSeg = Math.max(out.walBelowSeg ?? 0, below);
    for (const b of backups) out.backups.add(b);
    for (const f of files) out.files.add(f);
    if (out.lastKey === null || key > out.lastKey) out.lastKey = key;
  };
  for (const r of rows) add(r.key, r.wal_below_seg, JSON.parse(r.backups) as string[], JSON.parse(r.files) as string[]);
  for (const e of more) add(e.key, e.walBelowSeg, e.backups, e.files);
  return out;
}

/** Whether an archived file (history files never are) is one the applied records removed. */
export function wasExpired(x: Expired, name: string, kind: string, segNo: number): boolean {
  if (kind === 'history') return false;
  return x.files.has(name) || (x.walBelowSeg !== null && segNo < x.walBelowSeg);
}

/**
 * Records `e` and forgets the rows of what it removed. Call inside a catalog write transaction.
 * The WAL below a segment number goes in bulk: the stretch triggers, which would recompute a
 * block per row, are set aside while the rows go and the stretches are computed once after.
 */
export function applyExpiry(cat: Catalog, e: Expiry): void {
  const db = cat.db;
  const inserted = db
    .prepare('INSERT OR IGNORE INTO expirations (key, at, wal_below_seg, backups, files) VALUES (?, ?, ?, ?, ?)')
    .run(e.key, e.at, e.walBelowSeg, JSON.stringify(e.backups), JSON.stringify(e.files));
  if (inserted.changes === 0) return;
  const forgetBackup = db.prepare("DELETE FROM backups WHERE name = ? AND source = 'walship'");
  for (const b of e.backups) forgetBackup.run(b);
  const forgetFile = db.prepare("DELETE FROM wal_files WHERE name = ? AND kind <> 'history'");
  const forgetHistoryBackup = db.prepare("DELETE FROM backups WHERE name = ? AND source = 'history-file'");
  for (const f of e.files) {
    forgetFile.run(f);
    forgetHistoryBackup.run(f);
  }
  if (e.walBelowSeg === null) return;
  const below = e.walBelowSeg;
  cat.withTriggersSetAside('wal_seg_stretches_', () => {
    db.prepare("DELETE FROM backups WHERE source = 'history-file' AND name IN (SELECT name FROM wal_files WHERE kind = 'backup' AND seg_no < ?)").run(below);
    db.prepare("DELETE FROM wal_files WHERE kind <> 'history' AND seg_no < ?").run(below);
    db.prepare('DELETE FROM index_blocks WHERE first_seg + count <= ?').run(below);
    db.prepare('DELETE FROM wal_seg_stretches WHERE last_seg < ?').run(below);
    for (const tl of db.prepare('SELECT DISTINCT timeline FROM wal_seg_stretches WHERE first_seg < ?').pluck().all(below) as number[]) {
      db.exec(restretchSql(tl, below));
    }
  });
}
