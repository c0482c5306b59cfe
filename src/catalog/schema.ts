/**
 * Catalog schema, as numbered migrations. PRAGMA user_version holds the number applied; each
 * migration runs once, in order, in a transaction. Never edit a released migration: add one
 * (the SQL-writing helpers below are part of migration 4: never edit them either).
 *
 * Everything here can be rebuilt from the repository (objects carry their own metadata).
 */

/** A stretch of wal_seg_stretches never crosses a multiple of this segment number. */
export const STRETCH_BLOCK = 1024;

/** The wal_scans rows whose times count (the partial index wal_scans_xact_time holds them). */
export const XACT_SCANS = 'partial = 0 AND commits + aborts > 0';

/** The transaction time a wal_scans row `scan` adds to its stretch (an SQL expression). */
const xactTime = (scan: string) => `CASE WHEN ${scan}.partial = 0 AND ${scan}.commits + ${scan}.aborts > 0 THEN ${scan}.max_xact_time END`;

/** First segment number of the block holding segment `seg` (an SQL expression). */
const blockStart = (seg: string) => `((${seg}) - (${seg}) % ${STRETCH_BLOCK})`;

/** The larger of two nullable values (SQLite's max() is null when either is). */
const greatest = (a: string, b: string) => `coalesce(max(${a}, ${b}), ${a}, ${b})`;

/**
 * Recomputes wal_seg_stretches from wal_files and wal_scans: everything (no arguments), or the
 * block of segment `seg` of `timeline` (SQL expressions).
 */
function rebuildStretches(timeline?: string, seg?: string): string {
  const block = (first: string) => (seg ? `${first} BETWEEN ${blockStart(seg)} AND ${blockStart(seg)} + ${STRETCH_BLOCK - 1}` : '1');
  return `
    DELETE FROM wal_seg_stretches WHERE ${timeline ? `timeline = ${timeline} AND ${block('first_seg')}` : '1'};
    INSERT INTO wal_seg_stretches (timeline, first_seg, last_seg, unscanned, max_xact_time)
      SELECT timeline, min(seg_no), max(seg_no), sum(scan_id IS NULL), max(xact_time)
        FROM (SELECT f.timeline, f.seg_no, s.id AS scan_id,
                     ${xactTime('s')} AS xact_time,
                     f.seg_no - row_number() OVER (PARTITION BY f.timeline ORDER BY f.seg_no) AS island
                FROM wal_files f LEFT JOIN wal_scans s ON s.file = f.name
               WHERE f.kind = 'segment' AND f.seg_no IS NOT NULL AND ${timeline ? `f.timeline = ${timeline} AND ${block('f.seg_no')}` : '1'})
       GROUP BY timeline, seg_no / ${STRETCH_BLOCK}, island;`;
}

/** The stretch holding segment `seg` of `timeline` (a WHERE clause on wal_seg_stretches). */
const holding = (timeline: string, seg: string) =>
  `timeline = ${timeline} AND first_seg BETWEEN ${blockStart(seg)} AND ${seg} AND last_seg >= ${seg}`;

/** Merges the stretch starting at segment `seg` into the one ending just before it, in the same block. */
function joinAt(timeline: string, segExpr: string): string {
  const seg = `(${segExpr})`;
  const right = `FROM wal_seg_stretches r WHERE r.timeline = ${timeline} AND r.first_seg = ${seg}`;
  return `
    UPDATE wal_seg_stretches SET (last_seg, unscanned, max_xact_time) =
        (SELECT r.last_seg, wal_seg_stretches.unscanned + r.unscanned, ${greatest('wal_seg_stretches.max_xact_time', 'r.max_xact_time')} ${right})
      WHERE timeline = ${timeline} AND last_seg = ${seg} - 1 AND ${seg} % ${STRETCH_BLOCK} <> 0 AND EXISTS (SELECT 1 ${right});
    DELETE FROM wal_seg_stretches WHERE timeline = ${timeline} AND first_seg = ${seg}
      AND EXISTS (SELECT 1 FROM wal_seg_stretches l WHERE l.timeline = ${timeline} AND l.first_seg BETWEEN ${blockStart(seg)} AND ${seg} - 1 AND l.last_seg >= ${seg});`;
}

/**
 * Recomputes the stretches of the block holding segment `seg` of `timeline` (numbers), with the
 * query the migration and the triggers use: for a writer that set the triggers aside
 * (catalog/expirations.ts).
 */
export function restretchSql(timeline: number, seg: number): string {
  return rebuildStretches(String(Math.trunc(timeline)), String(Math.trunc(seg)));
}

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
  // 4: the archived segments as stretches of consecutive segments per timeline, with what their
  // scans say, so that the planner reads a row per stretch instead of one per segment
  // (src/recovery/input.ts SegmentSource). A stretch never crosses a multiple of STRETCH_BLOCK,
  // so every figure in a row covers at most that many segments: a range question reads at most
  // that many rows beyond the stretches, and a delete recomputes at most one block. Triggers keep
  // it exact for every writer: adding a segment or its scan updates one or two rows; deleting or
  // renumbering recomputes the block from wal_files and wal_scans.
  `
  CREATE TABLE wal_seg_stretches (
    timeline INTEGER NOT NULL,
    first_seg INTEGER NOT NULL,
    last_seg INTEGER NOT NULL,
    unscanned INTEGER NOT NULL, -- segments in it without a wal_scans row
    max_xact_time INTEGER,      -- newest transaction time its scans hold; null: none
    PRIMARY KEY (timeline, first_seg)
  ) WITHOUT ROWID;
  CREATE INDEX wal_seg_stretches_last ON wal_seg_stretches (timeline, last_seg);
  CREATE INDEX wal_scans_xact_time ON wal_scans (timeline, seg_no, max_xact_time) WHERE ${XACT_SCANS};
  ${rebuildStretches()}
  -- A new segment (not scanned yet: its scan row references it) extends the stretch ending just
  -- before it or starts one, then joins the stretch starting just after it.
  CREATE TRIGGER wal_seg_stretches_add AFTER INSERT ON wal_files WHEN new.kind = 'segment' AND new.seg_no IS NOT NULL BEGIN
    UPDATE wal_seg_stretches SET last_seg = new.seg_no, unscanned = unscanned + 1
     WHERE timeline = new.timeline AND last_seg = new.seg_no - 1 AND new.seg_no % ${STRETCH_BLOCK} <> 0;
    INSERT INTO wal_seg_stretches (timeline, first_seg, last_seg, unscanned, max_xact_time)
      SELECT new.timeline, new.seg_no, new.seg_no, 1, NULL
       WHERE NOT EXISTS (SELECT 1 FROM wal_seg_stretches WHERE timeline = new.timeline AND last_seg = new.seg_no);
    ${joinAt('new.timeline', 'new.seg_no + 1')}
  END;
  CREATE TRIGGER wal_seg_stretches_remove AFTER DELETE ON wal_files WHEN old.kind = 'segment' BEGIN
    ${rebuildStretches('old.timeline', 'old.seg_no')}
  END;
  CREATE TRIGGER wal_seg_stretches_move AFTER UPDATE OF kind, timeline, seg_no ON wal_files
    WHEN old.kind IS NOT new.kind OR old.timeline IS NOT new.timeline OR old.seg_no IS NOT new.seg_no BEGIN
    ${rebuildStretches('old.timeline', 'old.seg_no')}
    ${rebuildStretches('new.timeline', 'new.seg_no')}
  END;
  CREATE TRIGGER wal_seg_stretches_scan_add AFTER INSERT ON wal_scans WHEN new.partial = 0 BEGIN
    UPDATE wal_seg_stretches
       SET unscanned = unscanned - 1,
           max_xact_time = ${greatest('max_xact_time', xactTime('new'))}
     WHERE ${holding('new.timeline', 'new.seg_no')};
  END;
  CREATE TRIGGER wal_seg_stretches_scan_times AFTER UPDATE OF commits, aborts, max_xact_time ON wal_scans WHEN new.partial = 0 BEGIN
    UPDATE wal_seg_stretches
       SET max_xact_time = (SELECT max(max_xact_time) FROM wal_scans
                             WHERE timeline = wal_seg_stretches.timeline AND seg_no BETWEEN wal_seg_stretches.first_seg AND wal_seg_stretches.last_seg
                               AND ${XACT_SCANS})
     WHERE ${holding('new.timeline', 'new.seg_no')};
  END;
  -- A scan deleted with its file (the cascade runs first): the file's trigger recomputes.
  CREATE TRIGGER wal_seg_stretches_scan_remove AFTER DELETE ON wal_scans
    WHEN old.partial = 0 AND EXISTS (SELECT 1 FROM wal_files WHERE name = old.file) BEGIN
    ${rebuildStretches('old.timeline', 'old.seg_no')}
  END;
  CREATE TRIGGER wal_seg_stretches_scan_move AFTER UPDATE OF file, timeline, seg_no, partial ON wal_scans
    WHEN old.file IS NOT new.file OR old.timeline IS NOT new.timeline OR old.seg_no IS NOT new.seg_no OR old.partial IS NOT new.partial BEGIN
    ${rebuildStretches('old.timeline', 'old.seg_no')}
    ${rebuildStretches('new.timeline', 'new.seg_no')}
  END;
  `,
  // 5: the SHA-256 of each object's compressed data, which fetch verifies instead of hashing the
  // decompressed file (archive/envelope.ts); null for files pushed before.
  `
  ALTER TABLE wal_files ADD COLUMN body_sha256 TEXT;
  `,
  // 6: the catalog as a cache of the repository (sync/sync.ts). scan_record: the scan as the
  // object's metadata carries it (archive/envelope.ts), which index blocks are made of; null for
  // files pushed without it. first_record_prev: the xl_prev of a file's first record, which
  // archive-push checks the history's continuity with (wal/continuity.ts). push_refusals: what
  // archive-push refused (archive/push.ts), for `walship info`. index_blocks: the repository's
  // index blocks this catalog knows of (archive/index-blocks.ts). sync_state: when the catalog
  // last read the repository.
  `
  ALTER TABLE wal_files ADD COLUMN scan_record TEXT;
  ALTER TABLE wal_scans ADD COLUMN first_record_prev INTEGER;
  CREATE TABLE index_blocks (
    timeline INTEGER NOT NULL,
    first_seg INTEGER NOT NULL,
    count INTEGER NOT NULL,
    object_key TEXT NOT NULL,
    PRIMARY KEY (timeline, first_seg, count)
  ) WITHOUT ROWID;
  CREATE TABLE sync_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    synced_at TEXT NOT NULL,
    requests INTEGER NOT NULL
  );
  CREATE INDEX wal_scans_needs_rescan ON wal_scans (seg_no) WHERE tail_state = 'needs-rescan';
  -- Files archive-push refused on this host while PostgreSQL had them .ready in wal_dir (its
  -- pg_wal, an absolute path), until one is archived.
  CREATE TABLE push_refusals (
    name TEXT PRIMARY KEY,
    wal_dir TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    count INTEGER NOT NULL
  );
  `,
  // 7: what walship expire removed from the repository (expire/<id>.json; catalog/expirations.ts):
  // every WAL file of any timeline in segments numbered below wal_below_seg (history files
  // excepted), the walship backups and the files named. Sync applies each record once and leaves
  // out what they removed, should an interrupted expire have left some of it behind.
  `
  CREATE TABLE expirations (
    key TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    wal_below_seg INTEGER,
    backups TEXT NOT NULL,
    files TEXT NOT NULL
  );
  `,
  // 8: segments archive-push acknowledged without archiving them (push_queue_max: pg_wal was
  // full and the repository unreachable), from the gap records in the repository (gaps/) or,
  // until one is stored there, from this host's own drop. The planner names them in gaps.
  `
  CREATE TABLE dropped_wal (
    name TEXT PRIMARY KEY,
    timeline INTEGER NOT NULL,
    seg_no INTEGER NOT NULL,
    dropped_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    host TEXT NOT NULL
  );
  `,
];
