/**
 * The base-backup format in the repository (pure: names, types, exclusion rules, chunk planning).
 *
 *   backups/<id>/chunk-000001.tar.zst   files, as a zstd-compressed tar (zstd -dc | tar x works)
 *   backups/<id>/manifest.json          every file: size, mode, sha256, where its bytes are
 *   backups/<id>/backup.json            the summary; written last: a backup without it is incomplete
 *
 * A file larger than a chunk is stored in pieces, tar entries named `<path>.walship-part-NNNNNN`,
 * which restore writes at their offsets (the manifest lists them).
 */

export const BACKUP_PREFIX = 'backups/';
export const CHUNK_RAW_BYTES = 64 * 1024 * 1024;

export const backupKey = (id: string, name: string): string => `${BACKUP_PREFIX}${id}/${name}`;
export const chunkName = (n: number): string => `chunk-${String(n).padStart(6, '0')}.tar.zst`;
/** The control file: backed up after every other file (a standby's backup ends at its minimum recovery point), restored last. */
export const PG_CONTROL = 'global/pg_control';
export const partEntryName = (path: string, part: number): string => `${path}.walship-part-${String(part).padStart(6, '0')}`;

export interface ManifestPiece {
  /** Chunk object name within the backup. */
  chunk: string;
  /** The tar entry holding these bytes. */
  entry: string;
  offset: number;
  length: number;
  /** SHA-256 of these bytes. */
  sha256: string;
}

export interface ManifestFile {
  /** Relative to the data directory; tablespace files under pg_tblspc/<oid>/. */
  path: string;
  size: number;
  mode: number;
  mtime: string;
  /** Where the bytes are, each piece with its own checksum (one piece unless the file is large). */
  pieces: ManifestPiece[];
}

export interface Manifest {
  format: 1;
  id: string;
  directories: { path: string; mode: number }[];
  tablespaces: { oid: string; location: string }[];
  files: ManifestFile[];
}

export interface BackupSummary {
  format: 1;
  id: string;
  label: string;
  systemIdentifier: string;
  pgVersion: string;
  pgMajor: number;
  startLsn: string;
  stopLsn: string;
  checkpointLsn: string | null;
  startTimeline: number;
  stopTimeline: number;
  startTime: string;
  stopTime: string;
  startWal: string;
  stopWal: string;
  files: number;
  rawBytes: number;
  storedBytes: number;
  durationMs: number;
  chunks: string[];
  /** SHA-256 of each chunk's stored (compressed) bytes; absent in backups of older walship. */
  chunkSha256?: Record<string, string>;
  backupLabel: string;
  tablespaceMap: string | null;
}

/**
 * `backups/<id>/started.json`, written as soon as the backup has started: any host learns of a
 * backup that is running, or that died without a word (backup.json is written last, on success).
 */
export interface BackupStart {
  format: 1;
  id: string;
  label: string;
  startLsn: string;
  startTimeline: number;
  startTime: string;
}

/** `backups/<id>/failed.json`, written when a backup fails (when the repository can still be written). */
export interface BackupFailure {
  format: 1;
  id: string;
  error: string;
  failedAt: string;
}

/** Directories whose contents PostgreSQL's documentation says to leave out of a base backup (kept empty). */
export const EMPTY_DIRS: ReadonlySet<string> = new Set(['pg_wal', 'pg_replslot', 'pg_dynshmem', 'pg_notify', 'pg_serial', 'pg_snapshots', 'pg_stat_tmp', 'pg_subtrans']);
/** Files left out wherever they are (the top-level ones only at the top). */
const TOP_FILES = new Set(['postmaster.pid', 'postmaster.opts', 'backup_label', 'tablespace_map', 'backup_manifest', 'backup_label.old', 'recovery.signal', 'standby.signal', 'postgresql.auto.conf.tmp', 'current_logfiles.tmp']);

/**
 * Whether a path (relative to the data directory, '/'-separated) goes into the backup.
 * `isDir` tells directories from files.
 */
export function includedInBackup(path: string, isDir: boolean): boolean {
  const parts = path.split('/');
  const name = parts[parts.length - 1]!;
  if (parts.length > 1 && EMPTY_DIRS.has(parts[0]!)) {
    // pg_wal/archive_status must exist for the server to start; everything else in these goes.
    return isDir && path === 'pg_wal/archive_status';
  }
  if (name.startsWith('pgsql_tmp')) return false;
  if (isDir) return true;
  if (parts.length === 1 && TOP_FILES.has(name)) return false;
  if (name.startsWith('pg_internal.init')) return false;
  // Temporary relations: t<backend>_<relfilenode>[...].
  if (/^t\d+_\d+/.test(name) && (parts[0] === 'base' || parts[0] === 'pg_tblspc')) return false;
  return true;
}

export interface PlannedFile {
  path: string;
  size: number;
}

export interface PlannedChunk {
  name: string;
  /** Whole files, or pieces of one large file. */
  items: { path: string; offset: number; length: number; part: number | null }[];
  rawBytes: number;
}

/**
 * Groups files into chunks of about `chunkBytes` raw bytes, in the given order; a file larger
 * than a chunk gets chunks of its own, one per piece.
 */
export function planChunks(files: readonly PlannedFile[], chunkBytes = CHUNK_RAW_BYTES): PlannedChunk[] {
  const chunks: PlannedChunk[] = [];
  let cur: PlannedChunk | null = null;
  const next = (): PlannedChunk => {
    const c: PlannedChunk = { name: chunkName(chunks.length + 1), items: [], rawBytes: 0 };
    chunks.push(c);
    return c;
  };
  for (const f of files) {
    if (f.size > chunkBytes) {
      for (let off = 0, part = 1; off < f.size; off += chunkBytes, part++) {
        const c = next();
        const length = Math.min(chunkBytes, f.size - off);
        c.items.push({ path: f.path, offset: off, length, part });
        c.rawBytes = length;
      }
      cur = null;
      continue;
    }
    if (!cur || cur.rawBytes + f.size > chunkBytes) cur = next();
    cur.items.push({ path: f.path, offset: 0, length: f.size, part: null });
    cur.rawBytes += f.size;
  }
  return chunks;
}

/** A sortable, unique-enough backup id: 20261124T124700Z-1a2b. */
export function newBackupId(now: Date, random: string): string {
  return `${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${random}`;
}

/** Fields of a backup_label file. */
export function parseBackupLabel(text: string): { startWal: string | null; checkpoint: string | null; startTimeline: number | null; label: string | null } {
  const field = (k: string) => new RegExp(`^${k}: (.*)$`, 'm').exec(text)?.[1]?.trim() ?? null;
  const start = field('START WAL LOCATION');
  return {
    startWal: start ? (/\(file ([0-9A-F]{24})\)/.exec(start)?.[1] ?? null) : null,
    checkpoint: field('CHECKPOINT LOCATION'),
    startTimeline: field('START TIMELINE') ? Number(field('START TIMELINE')) : null,
    label: field('LABEL'),
  };
}
