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
  // 3: what the WAL records say, read by archive-push (src/wal/scanner.ts, src/catalog/scan-store.ts).
  // Times are microseconds since the Unix epoch. A record belongs to the file it starts in;
  // head_cont / tail_cont hold the halves of a record spanning two files until both are in.
  `
  CREATE TABLE wal_scans (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL UNIQUE REFERENCES wal_files(name) ON DELETE CASCADE,
    timeline INTEGER NOT NULL,
    seg_no INTEGER NOT NULL,
    partial INTEGER NOT NULL CHECK (partial IN (0, 1)),
    start_lsn INTEGER NOT NULL,
    end_lsn INTEGER NOT NULL,
    end_reason TEXT NOT NULL,
    first_record_lsn INTEGER,
    last_record_lsn INTEGER,
    records INTEGER NOT NULL,
    commits INTEGER NOT NULL,
    aborts INTEGER NOT NULL,
    first_xact_time INTEGER,
    last_xact_time INTEGER,
    min_xact_time INTEGER,
    max_xact_time INTEGER,
    head_cont TEXT,
    tail_cont TEXT,
    tail_lsn INTEGER,
    tail_state TEXT CHECK (tail_state IN ('pending', 'complete', 'aborted', 'needs-rescan')),
    scanned_at TEXT NOT NULL
  );
  CREATE INDEX wal_scans_seg ON wal_scans (seg_no, timeline);
  -- kind: 0 commit, 1 abort, 2 commit prepared, 3 abort prepared
  CREATE TABLE wal_xacts (
    scan_id INTEGER NOT NULL REFERENCES wal_scans(id) ON DELETE CASCADE,
    lsn INTEGER NOT NULL,
    end_lsn INTEGER NOT NULL,
    xid INTEGER NOT NULL,
    kind INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 3),
    xact_time INTEGER NOT NULL,
    PRIMARY KEY (scan_id, lsn)
  ) WITHOUT ROWID;
  CREATE INDEX wal_xacts_xid ON wal_xacts (xid);
  CREATE TABLE wal_restore_points (
    scan_id INTEGER NOT NULL REFERENCES wal_scans(id) ON DELETE CASCADE,
    lsn INTEGER NOT NULL,
    end_lsn INTEGER NOT NULL,
    name TEXT NOT NULL,
    rp_time INTEGER NOT NULL,
    PRIMARY KEY (scan_id, lsn)
  ) WITHOUT ROWID;
  CREATE INDEX wal_restore_points_name ON wal_restore_points (name);
  CREATE TABLE wal_checkpoints (
    scan_id INTEGER NOT NULL REFERENCES wal_scans(id) ON DELETE CASCADE,
    lsn INTEGER NOT NULL,
    end_lsn INTEGER NOT NULL,
    redo_lsn INTEGER NOT NULL,
    cp_time INTEGER NOT NULL,
    online INTEGER NOT NULL,
    tli INTEGER NOT NULL,
    prev_tli INTEGER NOT NULL,
    PRIMARY KEY (scan_id, lsn)
  ) WITHOUT ROWID;
  CREATE TABLE wal_end_of_recovery (
    scan_id INTEGER NOT NULL REFERENCES wal_scans(id) ON DELETE CASCADE,
    lsn INTEGER NOT NULL,
    end_lsn INTEGER NOT NULL,
    eor_time INTEGER NOT NULL,
    new_tli INTEGER NOT NULL,
    prev_tli INTEGER NOT NULL,
    PRIMARY KEY (scan_id, lsn)
  ) WITHOUT ROWID;
  CREATE TABLE wal_backup_ends (
    scan_id INTEGER NOT NULL REFERENCES wal_scans(id) ON DELETE CASCADE,
    lsn INTEGER NOT NULL,
    end_lsn INTEGER NOT NULL,
    backup_start_lsn INTEGER NOT NULL,
    PRIMARY KEY (scan_id, lsn)
  ) WITHOUT ROWID;
  `,
];
