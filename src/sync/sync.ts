/**
 * The catalog is a cache of the repository. Everything it holds can be read back from the
 * repository: each archived file's object carries its metadata and the scan of its records
 * (envelope.ts), index blocks gather the metadata of runs of segments (index-blocks.ts), history
 * and backup history files are small enough to read whole, and walship's backups leave
 * started/backup/failed documents (backup/format.ts).
 *
 * sync brings a catalog up to date, reading only what can be new: per timeline, the listing from
 * a little before its newest segment (SYNC_WINDOW segments back, for pushes that landed out of
 * order), the stretches before its first segment and in its gaps, the timelines newer than the
 * newest known (and any between known ones whose history file is there), and the backups not
 * known complete, and the records of what expires removed (expire/record.ts), whose rows it
 * forgets and whose leftovers it leaves out. Its cost grows with what is new, not with the size of the archive. What it
 * found is indexed in one transaction: a killed sync leaves the catalog as it was. A damaged
 * object is left out, with a warning: one bad object does not keep the catalog from the rest.
 *
 * rebuild makes a catalog from the repository alone: every object listed, segments' metadata
 * taken from the index blocks where they cover them (a handful of reads per thousand segments)
 * and from the objects' frames elsewhere. It builds a new catalog file beside the old one, then
 * swaps its contents in with one transaction (pushes running meanwhile wait for it, and what they
 * pushed during the build is synced right after): the catalog is the old or the new one, never
 * a mix. A sync that finds its catalog empty, or more new files than a rebuild reads faster, rebuilds.
 *
 * Every command that answers from the catalog (info, backups, ranges, plan, restore) syncs first
 * (syncForReading); when the repository cannot be read, it answers from the catalog as it is and
 * says since when that is.
 */
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { StorageDriver } from '../storage/driver.js';
import { Catalog } from '../catalog/catalog.js';
import { indexArchivedFile, type ArchivedFile } from '../catalog/index-file.js';
import { storeScan } from '../catalog/scan-store.js';
import { WalshipError, asWalshipError } from '../errors.js';
import { logger } from '../log.js';
import { processAlive } from '../pid.js';
import { runPool } from '../pool.js';
import { mergeIntervals } from '../intervals.js';
import { hex8, historyName, segmentName } from '../wal/names.js';
import { recordBackupComplete, recordBackupFailure, recordBackupStart } from '../backup/record.js';
import { readIdentity, type RepoIdentity } from '../archive/identity.js';
import { WAL_PREFIX, objectKeyFor } from '../archive/keys.js';
import { INDEX_PREFIX, parseBlockKey, type BlockRef } from '../archive/index-blocks.js';
import { BlockReader, listedFile, readArchivedFile, rescan, segNoOf, type ListedFile, type SegmentShape } from '../archive/repo-reader.js';
import { readBackupDocs, type BackupDocs } from './backup-docs.js';
import { applyExpiry, expiredOf, wasExpired, type Expired } from '../catalog/expirations.js';
import { readExpiries } from '../expire/record.js';
import { applyGaps, readGaps } from '../archive/gaps.js';

/** How far back from a timeline's newest segment sync lists again (pushes land slightly out of order). */
export const SYNC_WINDOW = 64;
/** More new files than this, and sync rebuilds instead (index blocks make that cheaper). */
const REBUILD_ABOVE = 4096;
/** Objects read at once. */
const READ_WIDTH = 16;
/** Files indexed per transaction while a rebuild fills its new catalog. */
const REBUILD_BATCH = 512;

export interface RepoContext {
  storage: StorageDriver;
  repoUrl: string;
  catalogPath: string;
}

export interface SyncOutcome {
  mode: 'sync' | 'rebuild';
  /** Archived files read and indexed. */
  files: number;
  /** Of those, segments indexed without their records read (older objects; see `rescan`). */
  unscanned: number;
  /** Segments downloaded and scanned (`rescan`, and spanning records that needed it). */
  rescanned: number;
  /** walship backups read. */
  backups: number;
  /** Index blocks read, and those found damaged (their segments were read one by one). */
  blocks: number;
  damagedBlocks: string[];
  /** Archived objects found damaged, left out of the catalog (recovery cannot pass them either). */
  damagedObjects: string[];
  requests: number;
  ms: number;
}

export interface SyncOptions {
  /** Download and scan segments whose object carries no scan (pushed by older walship). */
  rescan?: boolean;
}

function newOutcome(mode: SyncOutcome['mode']): SyncOutcome {
  return { mode, files: 0, unscanned: 0, rescanned: 0, backups: 0, blocks: 0, damagedBlocks: [], damagedObjects: [], requests: 0, ms: 0 };
}

/**
 * Runs `read` on archived object `key`; a damaged object (OBJECT_CORRUPT) is reported and left
 * out (null), so that one bad object does not keep the catalog from learning the rest.
 */
async function unlessDamaged<T>(key: string, out: SyncOutcome, read: () => Promise<T>): Promise<T | null> {
  try {
    return await read();
  } catch (err) {
    if (asWalshipError(err).code !== 'OBJECT_CORRUPT') throw err;
    logger.warn('an archived object is damaged: left out of the catalog (recovery cannot read it either)', { key, error: (err as Error).message });
    out.damagedObjects.push(key);
    return null;
  }
}

function isEmpty(cat: Catalog): boolean {
  return cat.db.prepare('SELECT EXISTS (SELECT 1 FROM wal_files) OR EXISTS (SELECT 1 FROM backups)').pluck().get() === 0;
}

/**
 * A repository without identity has had nothing archived: a catalog that lists files was not
 * filled from it (a wrong path or bucket, an unmounted filesystem, an emptied repository), and
 * neither sync nor rebuild may make the catalog agree with it.
 */
function refuseEmptiedRepository(ctx: RepoContext, cat: Catalog): void {
  if (isEmpty(cat)) return;
  throw new WalshipError(
    'REPOSITORY_INVALID',
    `repository ${ctx.storage.location} has no walship identity, but catalog ${ctx.catalogPath} lists what was archived there: a wrong path or bucket, an unmounted filesystem, or an emptied repository`,
  );
}

/** Most timeline numbers between known ones that one sync asks the repository about. */
const MAX_UNKNOWN_TIMELINES = 256;

/** The timelines the catalog's files are on, one index probe each (not a scan of every file). */
const FILE_TIMELINES = `WITH RECURSIVE t(tl) AS (SELECT min(timeline) FROM wal_files
  UNION ALL SELECT (SELECT min(timeline) FROM wal_files WHERE timeline > t.tl) FROM t WHERE t.tl IS NOT NULL)
  SELECT tl FROM t WHERE tl IS NOT NULL`;

function recordSync(cat: Catalog, requests: number): void {
  cat.db
    .prepare('INSERT INTO sync_state (id, synced_at, requests) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET synced_at = excluded.synced_at, requests = excluded.requests')
    .run(new Date().toISOString(), requests);
}

/** When the catalog last read the whole of what was new in the repository (null: never). */
export function lastSynced(cat: Catalog): string | null {
  return (cat.db.prepare('SELECT synced_at FROM sync_state WHERE id = 1').get() as { synced_at: string } | undefined)?.synced_at ?? null;
}

/** Brings the catalog at ctx.catalogPath up to date with the repository (see the top of this file). */
export async function syncCatalog(ctx: RepoContext, opts: SyncOptions = {}): Promise<SyncOutcome> {
  return sync(ctx, opts, true);
}

async function sync(ctx: RepoContext, opts: SyncOptions, mayRebuild: boolean): Promise<SyncOutcome> {
  const started = Date.now();
  const req0 = ctx.storage.requests;
  const out = newOutcome('sync');
  const identity = await readIdentity(ctx.storage);
  const cat = Catalog.open(ctx.catalogPath)!;
  try {
    cat.checkRepository(ctx.repoUrl);
    if (identity === null) {
      // Nothing was ever archived there: the catalog has nothing to learn.
      refuseEmptiedRepository(ctx, cat);
      cat.bindRepository(ctx.repoUrl);
      cat.write('record the sync', () => recordSync(cat, ctx.storage.requests - req0));
      return finish(out, ctx, started, req0);
    }
    cat.bindRepository(ctx.repoUrl, identity);
    const shape: SegmentShape = { segSize: identity.walSegmentSize, pgMajor: identity.pgMajor };
    const empty = isEmpty(cat);
    // What expires removed since the last sync: forgotten first, and left out of what is listed.
    const expiries = mayRebuild && empty ? [] : await readExpiries(ctx.storage, expiredOf(cat).lastKey);
    const expired = expiredOf(cat, expiries);
    const listed = mayRebuild && empty ? null : await newFiles(ctx.storage, cat, shape, expired);
    if (listed !== null && (listed.length <= REBUILD_ABOVE || !mayRebuild)) {
      const files = await readAll(ctx.storage, listed, shape, null, opts, out);
      const backups = await newBackups(ctx.storage, cat, out, expired);
      const gaps = await readGaps(ctx.storage);
      cat.write('sync with the repository', () => {
        for (const e of expiries) applyExpiry(cat, e);
        for (const f of files) indexArchivedFile(cat, f);
        applyBackups(cat, backups);
        applyGaps(cat, gaps);
        recordSync(cat, ctx.storage.requests - req0);
      });
      out.files = files.length;
      out.backups = backups.length;
      if (files.length > 0 || opts.rescan) await completeSpanning(ctx.storage, cat, shape, out, opts);
      return finish(out, ctx, started, req0);
    }
  } finally {
    cat.close();
  }
  // An empty catalog, or more new files than a rebuild reads faster.
  return rebuildCatalog(ctx, opts);
}

function finish(out: SyncOutcome, ctx: RepoContext, started: number, req0: number): SyncOutcome {
  out.requests = ctx.storage.requests - req0;
  out.ms = Date.now() - started;
  logger.debug('catalog synced with the repository', { mode: out.mode, files: out.files, backups: out.backups, requests: out.requests, ms: out.ms });
  return out;
}

/**
 * The archived files the repository holds that the catalog does not (or holds with another size),
 * from the listings sync makes (see the top of this file).
 */
async function newFiles(storage: StorageDriver, cat: Catalog, shape: SegmentShape, expired: Expired): Promise<ListedFile[]> {
  const known = cat.db.prepare('SELECT stored_size FROM wal_files WHERE name = ?').pluck();
  const out: ListedFile[] = [];
  const consider = (l: ListedFile | null) => {
    if (l && known.get(l.file.name) !== l.size && !isExpiredFile(expired, l, shape)) out.push(l);
  };
  const stretches = cat.segmentStretches();
  const timelines = new Set<number>([
    ...stretches.keys(),
    ...(cat.db.prepare(FILE_TIMELINES).pluck().all() as number[]),
    ...cat.timelines().map((t) => t.timeline),
  ]);
  // A timeline between known ones that this catalog never heard of (another host's failover onto
  // it): its history file says it exists. Nothing to ask when every number is known.
  const unknown: number[] = [];
  for (let tl = Math.max(0, ...timelines) - 1; tl >= 2 && unknown.length < MAX_UNKNOWN_TIMELINES; tl--) if (!timelines.has(tl)) unknown.push(tl);
  const historyKey = (tl: number) => objectKeyFor({ name: historyName(tl), kind: 'history', timeline: tl });
  for (const [i, info] of (await Promise.all(unknown.map((tl) => storage.head(historyKey(tl))))).entries()) if (info) timelines.add(unknown[i]!);
  for (const tl of [...timelines].sort((a, b) => a - b)) {
    const runs = stretches.get(tl) ?? [];
    // Windows of segment numbers [from, to] to list again: before the first run, every gap, the tail.
    const windows: [number, number][] = [];
    if (runs.length === 0) windows.push([-1, Infinity]);
    else {
      windows.push([-1, runs[0]![0] - 1]);
      for (let i = 1; i < runs.length; i++) if (runs[i]![0] > runs[i - 1]![1] + 1) windows.push([runs[i - 1]![1] + 1, runs[i]![0] - 1]);
      windows.push([Math.max(0, runs[runs.length - 1]![1] - SYNC_WINDOW), Infinity]);
    }
    const prefix = `${WAL_PREFIX}${hex8(tl)}`;
    for (const [from, to] of mergeIntervals(windows)) {
      // From the files of segment `from` on (a history file sorts before every segment); a segment's
      // .partial and .backup files sort next to it.
      const startAfter = from < 0 ? undefined : objectKeyFor({ name: segmentName(tl, from, shape.segSize), kind: 'segment', timeline: tl }).replace(/\.zst$/, '');
      for await (const o of storage.list(prefix, { startAfter })) {
        const l = listedFile(o.key, o.size);
        if (l && segNoOf(l.file, shape.segSize) > to) break;
        consider(l);
      }
    }
  }
  // Timelines newer than every one known ('~' sorts after every character of a file name).
  const newest = Math.max(0, ...timelines);
  for await (const o of storage.list(WAL_PREFIX, { startAfter: `${WAL_PREFIX}${hex8(newest)}~` })) consider(listedFile(o.key, o.size));
  return out;
}

function isExpiredFile(expired: Expired, l: ListedFile, shape: SegmentShape): boolean {
  return wasExpired(expired, l.file.name, l.file.kind, segNoOf(l.file, shape.segSize));
}

/** Reads the listed files (a few at a time) as catalog input; files gone meanwhile are left out. */
async function readAll(storage: StorageDriver, listed: readonly ListedFile[], shape: SegmentShape, blocks: BlockReader | null, opts: SyncOptions, out: SyncOutcome): Promise<ArchivedFile[]> {
  const files: (ArchivedFile | null)[] = new Array(listed.length).fill(null);
  await runPool(
    listed.map((l, i) => [l, i] as const),
    READ_WIDTH,
    async ([l, i]) => {
      const entry = blocks && l.file.kind === 'segment' ? await blocks.entry(l.file.timeline, segNoOf(l.file, shape.segSize), l.file.name) : null;
      const f = await unlessDamaged(l.key, out, () => readArchivedFile(storage, l, shape, { entry, rescan: opts.rescan }));
      if (f && (f.file.kind === 'segment' || f.file.kind === 'partial')) {
        if (f.raw) out.rescanned++;
        else if (!f.scan) out.unscanned++;
      }
      files[i] = f;
    },
  );
  return files.filter((f): f is ArchivedFile => f !== null);
}

/** The documents of walship backups the catalog does not know as complete or failed. */
async function newBackups(storage: StorageDriver, cat: Catalog, out: SyncOutcome, expired: Expired): Promise<BackupDocs[]> {
  const status = cat.db.prepare("SELECT status FROM backups WHERE name = ? AND source = 'walship'").pluck();
  const ids = (await storage.children('backups/')).filter((id) => {
    const s = status.get(id) as string | undefined;
    return s !== 'complete' && s !== 'failed' && !expired.backups.has(id);
  });
  const docs: BackupDocs[] = [];
  await runPool(ids, READ_WIDTH, async (id) => {
    const d = await unlessDamaged(`backups/${id}/`, out, async () => readBackupDocs(storage, id, await storage.children(`backups/${id}/`)));
    if (d && (d.start || d.summary)) docs.push(d);
  });
  return docs.sort((a, b) => (a.id < b.id ? -1 : 1));
}

function applyBackups(cat: Catalog, docs: readonly BackupDocs[]): void {
  for (const d of docs) {
    if (d.summary) recordBackupComplete(cat, d.summary);
    else if (d.start && d.failure) recordBackupFailure(cat, d.start, d.failure);
    else if (d.start) recordBackupStart(cat, d.start);
  }
}

/**
 * Records that span into a segment whose head alone cannot finish them (a rare COMMIT PREPARED
 * with long arrays) are finished as push finishes them, with the next segment's bytes: it is
 * downloaded and its scan stored again. With `rescan`, segments indexed without their records
 * read are downloaded and scanned too.
 */
async function completeSpanning(storage: StorageDriver, cat: Catalog, shape: SegmentShape, out: SyncOutcome, opts: SyncOptions): Promise<void> {
  type Row = { name: string; object_key: string; stored_size: number };
  const next = cat.db.prepare(
    `SELECT f.name, f.object_key, f.stored_size FROM wal_scans s JOIN wal_files f ON f.kind IN ('segment', 'partial') AND f.seg_no = s.seg_no + 1 AND f.timeline >= s.timeline
      WHERE s.tail_state = 'needs-rescan' ORDER BY f.timeline = s.timeline DESC, f.timeline`,
  );
  const unscanned = opts.rescan
    ? (cat.db.prepare("SELECT f.name, f.object_key, f.stored_size FROM wal_files f LEFT JOIN wal_scans s ON s.file = f.name WHERE f.kind IN ('segment', 'partial') AND s.id IS NULL").all() as Row[])
    : [];
  const todo = new Map<string, Row>();
  for (const r of [...(next.all() as Row[]), ...unscanned]) todo.set(r.name, r);
  for (const r of todo.values()) {
    const l = listedFile(r.object_key, r.stored_size);
    if (!l) continue;
    const read = await unlessDamaged(l.key, out, () => rescan(storage, l, shape));
    if (!read) continue;
    const { scan, raw } = read;
    const segNo = segNoOf(l.file, shape.segSize);
    cat.write(`store the scan of ${l.file.name}`, () => storeScan(cat, l.file, { segNo, segSize: shape.segSize, startLsn: segNo * shape.segSize, pgMajor: shape.pgMajor }, scan!, raw));
    out.rescanned++;
  }
}

/** A new catalog from the repository alone (see the top of this file). */
export async function rebuildCatalog(ctx: RepoContext, opts: SyncOptions = {}): Promise<SyncOutcome> {
  const started = Date.now();
  const req0 = ctx.storage.requests;
  const out = newOutcome('rebuild');
  const identity = await readIdentity(ctx.storage);
  if (identity === null && existsSync(ctx.catalogPath)) {
    const cat = Catalog.open(ctx.catalogPath)!;
    try {
      refuseEmptiedRepository(ctx, cat);
    } finally {
      cat.close();
    }
  }
  removeAbandonedBuilds(ctx.catalogPath);
  const temp = `${ctx.catalogPath}.rebuild-${process.pid}`;
  removeDb(temp);
  const fresh = Catalog.open(temp)!;
  try {
    fresh.bindRepository(ctx.repoUrl, identity ?? undefined);
    if (identity) await fill(ctx.storage, fresh, identity, opts, out);
    fresh.write('record the sync', () => recordSync(fresh, ctx.storage.requests - req0));
  } catch (err) {
    fresh.close();
    removeDb(temp);
    throw err;
  }
  fresh.close();
  adopt(ctx.catalogPath, temp, ctx.repoUrl);
  // What was pushed while the new catalog was being built.
  if (identity) {
    const after = await sync(ctx, opts, false);
    out.files += after.files;
    out.backups += after.backups;
  }
  return finish(out, ctx, started, req0);
}

/** Fills a new catalog with everything the repository holds. */
async function fill(storage: StorageDriver, cat: Catalog, identity: RepoIdentity, opts: SyncOptions, out: SyncOutcome): Promise<void> {
  const shape: SegmentShape = { segSize: identity.walSegmentSize, pgMajor: identity.pgMajor };
  const refs: BlockRef[] = [];
  for await (const o of storage.list(INDEX_PREFIX)) {
    const ref = parseBlockKey(o.key, shape.segSize);
    if (ref) refs.push(ref);
  }
  const blocks = new BlockReader(storage, refs);
  const expiries = await readExpiries(storage, null);
  cat.write('record what expires removed', () => {
    for (const e of expiries) applyExpiry(cat, e);
  });
  const expired = expiredOf(cat);
  let batch: ListedFile[] = [];
  const flush = async () => {
    const files = await readAll(storage, batch, shape, blocks, opts, out);
    cat.write('index what the repository holds', () => {
      for (const f of files) indexArchivedFile(cat, f);
    });
    out.files += files.length;
    batch = [];
  };
  for await (const o of storage.list(WAL_PREFIX)) {
    const l = listedFile(o.key, o.size);
    if (!l || isExpiredFile(expired, l, shape)) continue;
    batch.push(l);
    if (batch.length >= REBUILD_BATCH) await flush();
  }
  await flush();
  const backups = await newBackups(storage, cat, out, expired);
  cat.write('index the backups', () => {
    applyBackups(cat, backups);
    for (const r of refs) if (!blocks.damaged.some((d) => d.startsWith(r.key))) cat.addIndexBlock(r.timeline, r.firstSeg, r.count, r.key);
  });
  out.backups = backups.length;
  out.blocks = blocks.read;
  out.damagedBlocks = blocks.damaged;
  if (blocks.damaged.length > 0) logger.warn('damaged index blocks were read around (their segments one by one)', { blocks: blocks.damaged.join('; ') });
  await completeSpanning(storage, cat, shape, out, opts);
}

/**
 * The tables of the catalog that the repository is the truth of, parents first, with the
 * stretches derived from them last (push_refusals is this host's own record, kept; so is
 * dropped_wal, whose rows this host may not have stored in the repository yet: sync adds the
 * repository's to it).
 */
const TABLES = ['wal_files', 'wal_scans', 'wal_xacts', 'wal_restore_points', 'wal_checkpoints', 'wal_end_of_recovery', 'wal_backup_ends', 'timelines', 'backups', 'index_blocks', 'expirations', 'sync_state', 'wal_seg_stretches'];

/**
 * Makes the catalog at `path` the one built at `temp`: a rename when there is none yet, else one
 * transaction that replaces every row (the triggers that keep the stretches are set aside while
 * the stretches are copied as built).
 */
function adopt(path: string, temp: string, repoUrl: string): void {
  if (!existsSync(path)) {
    renameSync(temp, path);
    return;
  }
  const live = Catalog.open(path)!;
  try {
    live.checkRepository(repoUrl);
    live.db.prepare('ATTACH DATABASE ? AS fresh').run(temp);
    try {
      live.write('replace the catalog with the rebuilt one', () =>
        live.withTriggersSetAside('', () => {
          for (const t of [...TABLES].reverse()) live.db.exec(`DELETE FROM main.${t}`);
          for (const t of TABLES) live.db.exec(`INSERT INTO main.${t} SELECT * FROM fresh.${t}`);
          live.db.exec('UPDATE main.repository SET (system_identifier, pg_major, wal_segment_size, created_at) = (SELECT system_identifier, pg_major, wal_segment_size, created_at FROM fresh.repository WHERE id = 1) WHERE id = 1');
        }),
      );
    } finally {
      live.db.exec('DETACH DATABASE fresh');
    }
  } finally {
    live.close();
  }
  removeDb(temp);
}

function removeDb(path: string): void {
  for (const p of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) rmSync(p, { force: true });
}

/** Removes the unfinished builds of rebuilds that were killed (their process is gone). */
function removeAbandonedBuilds(path: string): void {
  const dir = dirname(path);
  const stem = `${basename(path)}.rebuild-`;
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(stem)) continue;
    const pid = Number(/^(\d+)/.exec(n.slice(stem.length))?.[1]);
    if (Number.isInteger(pid) && pid !== process.pid && !processAlive(pid)) rmSync(join(dir, n), { force: true });
  }
}

/** How stale an answer from the catalog may be, when the repository could not be read first. */
export interface Staleness {
  /** The catalog's last complete read of the repository, ISO (null: never). */
  lastSyncedAt: string | null;
  /** Why it is not up to date. */
  reason: string;
}

/**
 * Syncs before a command answers from the catalog. Returns null when the catalog is up to date;
 * when the repository cannot be read (or `noSync`), says how stale the catalog may be. A catalog
 * that knows nothing is never offered as an answer: then the failure is the command's.
 */
export async function syncForReading(ctx: RepoContext, noSync: boolean): Promise<Staleness | null> {
  if (!noSync) {
    try {
      await syncCatalog(ctx);
      return null;
    } catch (err) {
      const we = asWalshipError(err);
      if (we.code !== 'REPOSITORY_UNAVAILABLE' && we.code !== 'REPOSITORY_INVALID' && we.code !== 'OBJECT_CORRUPT') throw err;
      return staleOrFail(ctx, we.message);
    }
  }
  return staleOrFail(ctx, 'not synced with the repository (--no-sync)');
}

function staleOrFail(ctx: RepoContext, reason: string): Staleness {
  const cat = Catalog.open(ctx.catalogPath)!;
  try {
    cat.checkRepository(ctx.repoUrl);
    if (isEmpty(cat)) {
      const why = reason.includes('--no-sync') ? 'and --no-sync keeps it from being filled from the repository' : `and the repository cannot be read to fill it: ${reason}`;
      throw new WalshipError('REPOSITORY_UNAVAILABLE', `the catalog ${ctx.catalogPath} knows nothing yet, ${why}`);
    }
    const stale = { lastSyncedAt: lastSynced(cat), reason };
    logger.warn('answering from the catalog as it is: it may lack what was archived since its last sync', { last_sync: stale.lastSyncedAt ?? 'never', reason });
    return stale;
  } finally {
    cat.close();
  }
}
