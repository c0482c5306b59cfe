/**
 * The local SQLite catalog: an index of what the repository holds, for fast questions
 * (what is archived, which time ranges are recoverable). SQLite in WAL mode with a busy
 * timeout; every write is one transaction, so concurrent pushes never corrupt it.
 */
import { chmodSync, closeSync, constants as fsc, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { trustProblem } from '../local/private.js';
import { WalshipError, describeSystemError } from '../errors.js';
import { MIGRATIONS } from './schema.js';

const require = createRequire(import.meta.url);

export interface WalFileRow {
  name: string;
  kind: 'segment' | 'partial' | 'history' | 'backup';
  timeline: number;
  seg_no: number | null;
  start_lsn: number | null;
  end_lsn: number | null;
  raw_size: number;
  stored_size: number;
  sha256: string;
  /** SHA-256 of the object's compressed data (see archive/envelope.ts); null: not recorded. */
  body_sha256: string | null;
  compression: string;
  object_key: string;
  pushed_at: string;
  /** The scan as the object's metadata carries it (archive/envelope.ts `scan`); null when it has none. */
  scan_record: string | null;
}

export interface TimelineRow {
  timeline: number;
  parent: number;
  switchpoint: number;
  reason: string;
  history_file: string;
}

export interface BackupRow {
  name: string;
  source: 'history-file' | 'walship';
  label: string;
  start_lsn: number;
  stop_lsn: number;
  checkpoint_lsn: number | null;
  start_timeline: number;
  stop_timeline: number;
  start_time: string | null;
  stop_time: string | null;
  start_time_text: string | null;
  stop_time_text: string | null;
  status: string;
}

/** A backups row as stored, with the columns only walship's own backups fill (migration 2). */
export interface StoredBackupRow extends BackupRow {
  pg_version: string | null;
  raw_size: number | null;
  stored_size: number | null;
  duration_ms: number | null;
  files: number | null;
  error: string | null;
}

export interface RepositoryRow {
  url: string;
  system_identifier: string | null;
  pg_major: number | null;
  wal_segment_size: number | null;
  created_at: string | null;
}

const BUSY_TIMEOUT_MS = 30_000;

/**
 * Runs `fn` again while it fails with SQLITE_BUSY, for up to BUSY_TIMEOUT_MS. For what SQLite
 * does not hand to its busy handler: switching a new file to WAL mode while another process does
 * the same (two pushes creating one catalog) fails at once with "database is locked".
 */
function untilNotBusy<T>(fn: () => T): T {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      return fn();
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}
/** SQLite's companions of the catalog file: they take its mode when SQLite creates them. */
const COMPANIONS = ['-wal', '-shm', '-journal'];

/**
 * Creates the catalog file, empty and private (0600), unless it exists, and its directory (0700)
 * when that is missing: SQLite then gives its -wal and -shm files the same mode.
 */
function createPrivately(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    closeSync(openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/**
 * The catalog says what is archived and what can be recovered to: walship uses only one that
 * belongs to the user it runs as and that no one else can write. Opened for writing, a catalog
 * of this user's that others can read (earlier versions of walship made it 0644) is made private, with
 * its companions.
 */
function checkCatalogFile(path: string, tighten: boolean): void {
  const st = statSync(path);
  const problem = trustProblem(st, 'file');
  if (problem !== null) {
    throw new WalshipError(
      'CATALOG_ERROR',
      `catalog ${path} ${problem}: walship uses only a catalog of the user it runs as that no one else can write (run walship as the cluster's OS user, or fix the file's owner and mode)`,
    );
  }
  if (tighten && (st.mode & 0o077) !== 0) {
    for (const p of [path, ...COMPANIONS.map((c) => path + c)]) {
      try {
        chmodSync(p, 0o600);
      } catch {
        /* a companion that is not there */
      }
    }
  }
}

/** A file archive-push refused while PostgreSQL had it `.ready` in `walDir`. */
export interface Refusal {
  name: string;
  walDir: string;
  code: string;
  message: string;
  firstAt: string;
  lastAt: string;
  count: number;
}

/** A segment archive-push acknowledged without archiving it (push_queue_max). */
export interface DroppedSegment {
  name: string;
  timeline: number;
  segNo: number;
  droppedAt: string;
  reason: string;
  host: string;
}

export class Catalog {
  private constructor(
    readonly path: string,
    readonly db: BetterSqlite3.Database,
  ) {}

  /**
   * Opens (creating it and its directory when `create`) and migrates the catalog.
   * With readonly, returns null when the file does not exist.
   */
  static open(path: string, opts: { readonly?: boolean } = {}): Catalog | null {
    if (opts.readonly && !existsSync(path)) return null;
    let db: BetterSqlite3.Database;
    try {
      const Database = require('better-sqlite3') as typeof BetterSqlite3;
      if (!opts.readonly) createPrivately(path);
      checkCatalogFile(path, !opts.readonly);
      db = new Database(path, { readonly: !!opts.readonly, timeout: BUSY_TIMEOUT_MS });
      if (!opts.readonly) {
        untilNotBusy(() => db.pragma('journal_mode = WAL'));
        db.pragma('synchronous = NORMAL');
      }
      db.pragma('foreign_keys = ON');
    } catch (err) {
      if (err instanceof WalshipError) throw err;
      throw new WalshipError('CATALOG_ERROR', `cannot open catalog ${path}: ${describeSystemError(err)}`, { cause: err });
    }
    const cat = new Catalog(path, db);
    try {
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > MIGRATIONS.length) {
        throw new WalshipError(
          'CATALOG_ERROR',
          `catalog ${path} has schema version ${version}, newer than this walship understands (${MIGRATIONS.length}): upgrade walship`,
        );
      }
      if (version < MIGRATIONS.length) {
        if (opts.readonly) {
          throw new WalshipError('CATALOG_ERROR', `catalog ${path} needs a schema upgrade: run any walship command that writes (e.g. walship info) with write access`);
        }
        cat.migrate();
      }
    } catch (err) {
      db.close();
      if (err instanceof WalshipError) throw err;
      throw new WalshipError('CATALOG_ERROR', `cannot read catalog ${path}: ${describeSystemError(err)}`, { cause: err });
    }
    return cat;
  }

  /** Opens the catalog, checks it indexes `repoUrl`, runs `fn`, and closes it. */
  static use<T>(path: string, repoUrl: string, fn: (cat: Catalog) => T): T {
    const cat = Catalog.open(path)!;
    try {
      cat.checkRepository(repoUrl);
      return fn(cat);
    } finally {
      cat.close();
    }
  }

  private migrate(): void {
    // An immediate transaction serializes concurrent first openers.
    const run = this.db.transaction(() => {
      const current = this.db.pragma('user_version', { simple: true }) as number;
      for (let v = current; v < MIGRATIONS.length; v++) {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      }
    });
    run.immediate();
  }

  close(): void {
    this.db.close();
  }

  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  /**
   * The prepared statement for `sql`, prepared once per connection: what a push or a rebuild runs
   * for every file and record (preparing costs more than running these small statements).
   * Statements returned here must not be switched to pluck() or raw().
   */
  statement(sql: string): BetterSqlite3.Statement {
    let st = this.statements.get(sql);
    if (!st) this.statements.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  /** Runs `fn` in one write transaction, mapping SQLite failures to CATALOG_ERROR. */
  /**
   * Runs `fn` with the main schema's triggers whose names start with `prefix` (every one for '')
   * dropped, and creates them again after, as they were: for a writer that changes many rows at
   * once and recomputes what the triggers keep itself. Call inside a write transaction.
   */
  withTriggersSetAside<T>(prefix: string, fn: () => T): T {
    const triggers = this.db
      .prepare("SELECT name, sql FROM main.sqlite_master WHERE type = 'trigger' AND substr(name, 1, length(?)) = ?")
      .all(prefix, prefix) as { name: string; sql: string }[];
    for (const t of triggers) this.db.exec(`DROP TRIGGER main."${t.name}"`);
    try {
      return fn();
    } finally {
      for (const t of triggers) this.db.exec(t.sql);
    }
  }

  write<T>(what: string, fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (err) {
      if (err instanceof WalshipError) throw err;
      throw new WalshipError('CATALOG_ERROR', `cannot ${what} in catalog ${this.path}: ${describeSystemError(err)}`, { cause: err });
    }
  }

  repository(): RepositoryRow | null {
    return (this.db.prepare('SELECT url, system_identifier, pg_major, wal_segment_size, created_at FROM repository WHERE id = 1').get() as RepositoryRow | undefined) ?? null;
  }

  /**
   * Binds this catalog to one repository (first use) or checks it is that repository.
   * A catalog never mixes two repositories.
   */
  bindRepository(url: string, identity?: { systemIdentifier: string; pgMajor: number; walSegmentSize: number; createdAt: string }): void {
    this.write('record the repository', () => {
      const row = this.repository();
      if (row && row.url !== url) {
        throw new WalshipError(
          'CATALOG_MISMATCH',
          `catalog ${this.path} indexes repository ${row.url}, not ${url}: give each repository its own catalog (--catalog)`,
        );
      }
      if (row && identity && row.system_identifier && row.system_identifier !== identity.systemIdentifier) {
        throw new WalshipError(
          'CATALOG_MISMATCH',
          `catalog ${this.path} indexes the cluster with system identifier ${row.system_identifier}, but repository ${url} now belongs to ${identity.systemIdentifier}: move the old catalog away`,
        );
      }
      if (!row) {
        this.db.prepare('INSERT INTO repository (id, url) VALUES (1, ?)').run(url);
      }
      if (identity && !row?.system_identifier) {
        this.db
          .prepare('UPDATE repository SET system_identifier = ?, pg_major = ?, wal_segment_size = ?, created_at = ? WHERE id = 1')
          .run(identity.systemIdentifier, identity.pgMajor, identity.walSegmentSize, identity.createdAt);
      }
    });
  }

  /** Checks (read-only) that this catalog indexes `url`. */
  checkRepository(url: string): void {
    const row = this.repository();
    if (row && row.url !== url) {
      throw new WalshipError(
        'CATALOG_MISMATCH',
        `catalog ${this.path} indexes repository ${row.url}, not ${url}: give each repository its own catalog (--catalog)`,
      );
    }
  }

  upsertWalFile(row: WalFileRow): void {
    this
      .statement(
        `INSERT INTO wal_files (name, kind, timeline, seg_no, start_lsn, end_lsn, raw_size, stored_size, sha256, body_sha256, compression, object_key, pushed_at, scan_record)
         VALUES (@name, @kind, @timeline, @seg_no, @start_lsn, @end_lsn, @raw_size, @stored_size, @sha256, @body_sha256, @compression, @object_key, @pushed_at, @scan_record)
         ON CONFLICT (name) DO UPDATE SET
           kind = excluded.kind, timeline = excluded.timeline, seg_no = excluded.seg_no, start_lsn = excluded.start_lsn,
           end_lsn = excluded.end_lsn, raw_size = excluded.raw_size, stored_size = excluded.stored_size, sha256 = excluded.sha256,
           body_sha256 = excluded.body_sha256, compression = excluded.compression, object_key = excluded.object_key, pushed_at = excluded.pushed_at,
           scan_record = coalesce(excluded.scan_record, wal_files.scan_record)`,
      )
      .run(row);
  }

  upsertTimeline(row: TimelineRow): void {
    this
      .statement(
        `INSERT INTO timelines (timeline, parent, switchpoint, reason, history_file) VALUES (@timeline, @parent, @switchpoint, @reason, @history_file)
         ON CONFLICT (timeline) DO UPDATE SET parent = excluded.parent, switchpoint = excluded.switchpoint, reason = excluded.reason, history_file = excluded.history_file`,
      )
      .run(row);
  }

  upsertBackup(row: BackupRow): void {
    this
      .statement(
        `INSERT INTO backups (name, source, label, start_lsn, stop_lsn, checkpoint_lsn, start_timeline, stop_timeline, start_time, stop_time, start_time_text, stop_time_text, status)
         VALUES (@name, @source, @label, @start_lsn, @stop_lsn, @checkpoint_lsn, @start_timeline, @stop_timeline, @start_time, @stop_time, @start_time_text, @stop_time_text, @status)
         ON CONFLICT (name) DO UPDATE SET label = excluded.label, start_lsn = excluded.start_lsn, stop_lsn = excluded.stop_lsn,
           checkpoint_lsn = excluded.checkpoint_lsn, start_timeline = excluded.start_timeline, stop_timeline = excluded.stop_timeline,
           start_time = excluded.start_time, stop_time = excluded.stop_time, start_time_text = excluded.start_time_text,
           stop_time_text = excluded.stop_time_text, status = excluded.status`,
      )
      .run(row);
  }

  /** Status and details of one of walship's own backups (call inside write()). */
  setBackupOutcome(
    name: string,
    status: string,
    d: { pgVersion?: string; rawBytes?: number; storedBytes?: number; durationMs?: number; files?: number; error?: string | null },
  ): void {
    this
      .statement(
        `UPDATE backups SET status = @status, pg_version = coalesce(@pgVersion, pg_version), raw_size = coalesce(@rawBytes, raw_size),
           stored_size = coalesce(@storedBytes, stored_size), duration_ms = coalesce(@durationMs, duration_ms), files = coalesce(@files, files),
           error = @error WHERE name = @name`,
      )
      .run({ name, status, pgVersion: null, rawBytes: null, storedBytes: null, durationMs: null, files: null, ...d, error: d.error ?? null });
  }

  walFile(name: string): WalFileRow | null {
    return (this.db.prepare('SELECT * FROM wal_files WHERE name = ?').get(name) as WalFileRow | undefined) ?? null;
  }

  walFiles(kind?: WalFileRow['kind']): WalFileRow[] {
    if (kind) return this.db.prepare('SELECT * FROM wal_files WHERE kind = ? ORDER BY timeline, seg_no, name').all(kind) as WalFileRow[];
    return this.db.prepare('SELECT * FROM wal_files ORDER BY timeline, seg_no, name').all() as WalFileRow[];
  }

  /** Segment numbers per timeline, in order (what range/gap summaries are built from). */
  /** The archived segments per timeline as stretches [first, last] of consecutive numbers, ascending (migration 4's summary). */
  segmentStretches(): Map<number, [number, number][]> {
    const out = new Map<number, [number, number][]>();
    const rows = this.db.prepare('SELECT timeline, first_seg, last_seg FROM wal_seg_stretches ORDER BY timeline, first_seg').raw().all() as [number, number, number][];
    for (const [tl, first, last] of rows) {
      let list = out.get(tl);
      if (!list) out.set(tl, (list = []));
      list.push([first, last]);
    }
    return out;
  }

  timelines(): TimelineRow[] {
    return this.db.prepare('SELECT * FROM timelines ORDER BY timeline').all() as TimelineRow[];
  }

  /** Every backup, oldest first (walship's own before the history file of the same backup). */
  backups(): StoredBackupRow[] {
    return this.db.prepare('SELECT * FROM backups ORDER BY start_lsn, source DESC').all() as StoredBackupRow[];
  }

  /** The segments of `timeline` numbered `first` to `last`, in order. */
  segmentsBetween(timeline: number, first: number, last: number): WalFileRow[] {
    return this.statement("SELECT * FROM wal_files WHERE kind = 'segment' AND timeline = ? AND seg_no BETWEEN ? AND ? ORDER BY seg_no").all(timeline, first, last) as WalFileRow[];
  }

  /** How many segments of `timeline` numbered `first` to `last` are archived, and how many of them carry their scan record. */
  segmentCount(timeline: number, first: number, last: number): { segments: number; withRecord: number } {
    const sql = "SELECT count(*) AS segments, count(scan_record) AS withRecord FROM wal_files WHERE kind = 'segment' AND timeline = ? AND seg_no BETWEEN ? AND ?";
    return this.statement(sql).get(timeline, first, last) as { segments: number; withRecord: number };
  }

  /** Whether the repository's index block of `count` segments from `first` is known to exist. */
  hasIndexBlock(timeline: number, first: number, count: number): boolean {
    return this.statement('SELECT 1 FROM index_blocks WHERE timeline = ? AND first_seg = ? AND count = ?').get(timeline, first, count) !== undefined;
  }

  /** Records that the repository holds that index block (call inside write()). */
  addIndexBlock(timeline: number, first: number, count: number, key: string): void {
    this.statement('INSERT OR IGNORE INTO index_blocks (timeline, first_seg, count, object_key) VALUES (?, ?, ?, ?)').run(timeline, first, count, key);
  }

  /** Records that archive-push refused `name`, `.ready` in `walDir`, (once more). Call inside write(). */
  noteRefusal(name: string, walDir: string, code: string, message: string): void {
    const now = new Date().toISOString();
    this.statement(
      `INSERT INTO push_refusals (name, wal_dir, code, message, first_at, last_at, count) VALUES (?, ?, ?, ?, ?, ?, 1)
       ON CONFLICT (name) DO UPDATE SET wal_dir = excluded.wal_dir, code = excluded.code, message = excluded.message, last_at = excluded.last_at, count = count + 1`,
    ).run(name, walDir, code, message, now, now);
  }

  /** `name` is archived: it is no longer refused. Call inside write(). */
  clearRefusal(name: string): void {
    this.statement('DELETE FROM push_refusals WHERE name = ?').run(name);
  }

  /** The files archive-push refused, most recent first. */
  /** Records dropped segments (known ones are kept as they are). Call inside write(). */
  noteDropped(rows: readonly DroppedSegment[]): void {
    const ins = this.statement('INSERT OR IGNORE INTO dropped_wal (name, timeline, seg_no, dropped_at, reason, host) VALUES (?, ?, ?, ?, ?, ?)');
    for (const r of rows) ins.run(r.name, r.timeline, r.segNo, r.droppedAt, r.reason, r.host);
  }

  /** Every dropped segment, in WAL order. */
  dropped(): DroppedSegment[] {
    return this.db
      .prepare('SELECT name, timeline, seg_no AS segNo, dropped_at AS droppedAt, reason, host FROM dropped_wal ORDER BY seg_no, timeline')
      .all() as DroppedSegment[];
  }

  refusals(): Refusal[] {
    return this.db.prepare('SELECT name, wal_dir AS walDir, code, message, first_at AS firstAt, last_at AS lastAt, count FROM push_refusals ORDER BY last_at DESC, name').all() as Refusal[];
  }

  totals(): { files: number; rawBytes: number; storedBytes: number; lastPush: { name: string; at: string } | null } {
    const t = this.db.prepare('SELECT count(*) AS files, coalesce(sum(raw_size), 0) AS raw, coalesce(sum(stored_size), 0) AS stored FROM wal_files').get() as {
      files: number;
      raw: number;
      stored: number;
    };
    const last = this.db.prepare('SELECT name, pushed_at AS at FROM wal_files ORDER BY pushed_at DESC, name DESC LIMIT 1').get() as
      | { name: string; at: string }
      | undefined;
    return { files: t.files, rawBytes: t.raw, storedBytes: t.stored, lastPush: last ?? null };
  }
}
