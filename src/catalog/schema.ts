/**
 * Catalog schema, as numbered migrations. PRAGMA user_version holds the number applied; each
 * migration runs once, in order, in a transaction. Never edit a released migration: add one.
 *
 * Everything here can be rebuilt from the repository (objects carry their own metadata).
 */
export const MIGRATIONS: readonly string[] = [
  // 1: the foundation
  `
  CREATE TABLE repository (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    url TEXT NOT NULL,
    system_identifier TEXT,
    pg_major INTEGER,
    wal_segment_size INTEGER,
    created_at TEXT
  );
  CREATE TABLE wal_files (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('segment', 'partial', 'history', 'backup')),
    timeline INTEGER NOT NULL,
    seg_no INTEGER,
    start_lsn INTEGER,
    end_lsn INTEGER,
    raw_size INTEGER NOT NULL,
    stored_size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    compression TEXT NOT NULL,
    object_key TEXT NOT NULL,
    pushed_at TEXT NOT NULL
  );
  CREATE INDEX wal_files_timeline_seg ON wal_files (timeline, seg_no);
  CREATE INDEX wal_files_pushed_at ON wal_files (pushed_at);
  CREATE TABLE timelines (
    timeline INTEGER PRIMARY KEY,
    parent INTEGER NOT NULL,
    switchpoint INTEGER NOT NULL,
    reason TEXT NOT NULL,
    history_file TEXT NOT NULL
  );
  CREATE TABLE backups (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL CHECK (source IN ('history-file', 'walship')),
    label TEXT NOT NULL,
    start_lsn INTEGER NOT NULL,
    stop_lsn INTEGER NOT NULL,
    checkpoint_lsn INTEGER,
    start_timeline INTEGER NOT NULL,
    stop_timeline INTEGER NOT NULL,
    start_time TEXT,
    stop_time TEXT,
    start_time_text TEXT,
    stop_time_text TEXT,
    status TEXT NOT NULL DEFAULT 'complete'
  );
  `,
  // walship's own base backups: what `walship backups` shows beyond a backup history file
  `
  ALTER TABLE backups ADD COLUMN pg_version TEXT;
  ALTER TABLE backups ADD COLUMN raw_size INTEGER;
  ALTER TABLE backups ADD COLUMN stored_size INTEGER;
  ALTER TABLE backups ADD COLUMN duration_ms INTEGER;
  ALTER TABLE backups ADD COLUMN files INTEGER;
  ALTER TABLE backups ADD COLUMN error TEXT;
  `,
];
