/**
 * `walship backup`: a full base backup of a running cluster into the repository.
 *
 * PostgreSQL's non-exclusive backup API runs on one held connection (pg_backup_start/stop on
 * 15+, pg_start_backup/pg_stop_backup on 13-14); walship reads the data directory and the
 * tablespaces itself, packs files into zstd-compressed tar chunks (a few at a time), writes a
 * manifest, waits until the WAL that makes the backup consistent is archived, and only then
 * writes backup.json, which is what makes the backup exist.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Pack } from 'tar-stream';
import type { Writable } from 'node:stream';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Client } from 'pg';
import type { Config } from '../config.js';
import { WalshipError, describeSystemError } from '../errors.js';
import { logger } from '../log.js';
import { parseLsn, parseWalFileName, segmentName } from '../wal/names.js';
import type { StorageDriver } from '../storage/driver.js';
import { Catalog } from '../catalog/catalog.js';
import { readIdentity, describeIdentity } from '../archive/identity.js';
import { objectKeyFor } from '../archive/keys.js';
import {
  EMPTY_DIRS,
  PG_CONTROL,
  backupKey,
  chunkName,
  includedInBackup,
  newBackupId,
  parseBackupLabel,
  partEntryName,
  planChunks,
  type BackupFailure,
  type BackupStart,
  type BackupSummary,
  type Manifest,
  type ManifestFile,
  type PlannedChunk,
} from './format.js';
import { Progress } from './progress.js';
import { connect } from './connect.js';
import { recordBackupComplete, recordBackupFailure, recordBackupStart } from './record.js';
import { runPool } from '../pool.js';
import { StreamCompressor } from '../archive/envelope.js';
import { readFull } from '../local/read-full.js';

export interface BackupOptions {
  label?: string;
  /** The data directory as this host sees it; default: the server's data_directory. */
  pgdata?: string;
  archiveTimeoutMs: number;
  parallel: number;
  /** Request an immediate checkpoint (else a spread one). */
  fast: boolean;
  progress: boolean;
  chunkBytes?: number;
}

export interface BackupContext {
  storage: StorageDriver;
  repoUrl: string;
  catalogPath: string;
  compressLevel: number;
}

interface ServerFacts {
  versionNum: number;
  version: string;
  systemIdentifier: string;
  dataDirectory: string;
  walSegmentSize: number;
  /** In recovery: a standby (its backup's WAL is the primary's to archive). */
  standby: boolean;
}

async function serverFacts(client: Client): Promise<ServerFacts> {
  const r = await client.query(
    `SELECT current_setting('server_version_num')::int AS num, current_setting('server_version') AS version,
            (SELECT system_identifier::text FROM pg_control_system()) AS sysid, current_setting('data_directory') AS datadir,
            current_setting('archive_mode') AS archive_mode, pg_is_in_recovery() AS standby,
            (SELECT setting::bigint * CASE unit WHEN 'B' THEN 1 WHEN 'kB' THEN 1024 WHEN 'MB' THEN 1048576 ELSE 1 END FROM pg_settings WHERE name = 'wal_segment_size') AS segsize`,
  );
  const row = r.rows[0] as { num: number; version: string; sysid: string; datadir: string; archive_mode: string; standby: boolean; segsize: string };
  if (row.num < 130000) throw new WalshipError('USAGE', `PostgreSQL ${row.version} is not supported: walship backs up 13 and later`);
  // A standby's WAL is archived by its primary (whose settings this connection cannot see).
  if (row.archive_mode === 'off' && !row.standby) {
    throw new WalshipError('USAGE', 'archive_mode is off: a base backup is useless without archived WAL; set archive_mode and archive_command (walship archive-push %p) first');
  }
  return { versionNum: row.num, version: row.version, systemIdentifier: row.sysid, dataDirectory: row.datadir, walSegmentSize: Number(row.segsize), standby: row.standby };
}

interface Listed {
  files: { path: string; abs: string; size: number }[];
  directories: { path: string; mode: number }[];
  tablespaces: { oid: string; location: string }[];
}

/** Walks the data directory (and tablespaces through pg_tblspc's links) applying the exclusion rules. */
async function listDataDirectory(pgdata: string): Promise<Listed> {
  const out: Listed = { files: [], directories: [], tablespaces: [] };
  const walk = async (abs: string, rel: string): Promise<void> => {
    let entries;
    try {
      entries = await fsp.readdir(abs, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // dropped while we looked
      throw new WalshipError('USAGE', `cannot read ${abs}: ${describeSystemError(err)} (run walship backup as the server's OS user)`);
    }
    for (const e of entries) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      const full = join(abs, e.name);
      let isDir = e.isDirectory();
      let target = full;
      if (e.isSymbolicLink()) {
        const real = await fsp.realpath(full).catch(() => null);
        const st = real ? await fsp.stat(real).catch(() => null) : null;
        if (!real || !st) continue;
        isDir = st.isDirectory();
        target = real;
        if (rel === 'pg_tblspc') out.tablespaces.push({ oid: e.name, location: real });
      } else if (!isDir && !e.isFile()) {
        continue; // sockets, fifos
      }
      if (!includedInBackup(path, isDir)) continue;
      if (isDir) {
        const st = await fsp.stat(target).catch(() => null);
        if (!st) continue;
        out.directories.push({ path, mode: st.mode & 0o7777 });
        // The contents of these directories are left out, but the directories are kept.
        if (!EMPTY_DIRS.has(path)) {
          await walk(target, path);
        } else if (path === 'pg_wal') {
          out.directories.push({ path: 'pg_wal/archive_status', mode: st.mode & 0o7777 });
        }
      } else {
        const st = await fsp.stat(target).catch(() => null);
        if (st) out.files.push({ path, abs: target, size: st.size });
      }
    }
  };
  await walk(pgdata, '');
  return out;
}

/** Bytes of a file read (and packed, compressed) at a time. */
const READ_PIECE = 4 * 1024 * 1024;

/**
 * A range of a file as the chunk packs it: its mode and time, its length (what the file holds of
 * the range when it is opened), and its bytes in pieces; null when the file is gone. A file that
 * shrinks while it is read is padded with zeros to that length, as pg_basebackup does: WAL
 * replay from the backup's start puts it right.
 */
async function openRange(abs: string, offset: number, length: number): Promise<{ length: number; mode: number; mtime: Date; pieces: AsyncGenerator<Buffer, void> } | null> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(abs, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new WalshipError('USAGE', `cannot read ${abs}: ${describeSystemError(err)}`);
  }
  let st;
  try {
    st = await fh.stat();
  } catch (err) {
    await fh.close();
    throw new WalshipError('USAGE', `cannot read ${abs}: ${describeSystemError(err)}`);
  }
  const have = Math.max(0, Math.min(length, st.size - offset));
  async function* pieces(): AsyncGenerator<Buffer, void> {
    try {
      for (let done = 0; done < have; ) {
        // Zeroed: what the file no longer holds (it shrank) stays zero.
        const piece = Buffer.alloc(Math.min(READ_PIECE, have - done));
        await readFull(fh, piece, offset + done);
        done += piece.length;
        yield piece;
      }
    } finally {
      await fh.close();
    }
  }
  return { length: have, mode: st.mode & 0o7777, mtime: st.mtime, pieces: pieces() };
}

/** Adds an entry of `size` bytes to the tar stream from `pieces`, waiting while the stream is full. */
async function packEntry(pack: Pack, header: { name: string; size: number; mode: number; mtime: Date }, pieces: AsyncIterable<Buffer>): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const entry = pack.entry(header, (err) => (err ? reject(err) : resolve())) as unknown as Writable;
    (async () => {
      for await (const p of pieces) if (!entry.write(p)) await new Promise<void>((r) => entry.once('drain', () => r()));
      entry.end();
    })().catch((err: unknown) => {
      entry.destroy(err as Error);
      reject(err);
    });
  });
}

/**
 * Builds one chunk and stores it, filling in `files` the manifest pieces it holds; returns its
 * sizes and the SHA-256 of its stored bytes. Its files are read in pieces into the tar stream,
 * which is compressed as it is made: a chunk holds its compressed bytes and one piece in memory.
 */
async function storeChunk(
  ctx: BackupContext,
  id: string,
  chunk: PlannedChunk,
  byPath: Map<string, string>,
  files: Map<string, ManifestFile>,
  extra: { name: string; data: Buffer }[] = [],
): Promise<{ raw: number; stored: number; sha256: string }> {
  const tar = await import('tar-stream');
  const pack = tar.pack();
  const parts: Buffer[] = [];
  const z = await StreamCompressor.start(ctx.compressLevel, undefined, (c) => parts.push(c));
  let failed: unknown = null;
  pack.on('data', (d: unknown) => {
    try {
      z.write(d as Buffer);
    } catch (err) {
      failed ??= err;
    }
  });
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  let raw = 0;
  for (const item of chunk.items) {
    const got = await openRange(byPath.get(item.path)!, item.offset, item.length);
    if (!got) continue; // removed since it was listed: WAL replay recreates what matters
    const entry = item.part === null ? item.path : partEntryName(item.path, item.part);
    const hash = createHash('sha256');
    await packEntry(pack, { name: entry, size: got.length, mode: got.mode, mtime: got.mtime }, (async function* () {
      for await (const p of got.pieces) {
        hash.update(p);
        yield p;
      }
    })());
    raw += got.length;
    let f = files.get(item.path);
    if (!f) {
      f = { path: item.path, size: 0, mode: got.mode, mtime: got.mtime.toISOString(), pieces: [] };
      files.set(item.path, f);
    }
    f.pieces.push({ chunk: chunk.name, entry, offset: item.offset, length: got.length, sha256: hash.digest('hex') });
    f.size = Math.max(f.size, item.offset + got.length);
  }
  for (const x of extra) {
    pack.entry({ name: x.name, size: x.data.length, mode: 0o600, mtime: new Date() }, x.data);
    raw += x.data.length;
  }
  pack.finalize();
  await done;
  if (failed !== null) throw failed;
  const { bodySha256 } = z.end();
  const body = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  parts.length = 0;
  const res = await ctx.storage.putIfAbsent(backupKey(id, chunk.name), body, { contentType: 'application/zstd' });
  if (res === 'exists') throw new WalshipError('REPOSITORY_INVALID', `backup object ${backupKey(id, chunk.name)} exists already: backup ids must be unique`);
  return { raw, stored: body.length, sha256: bodySha256 };
}

/**
 * Waits until the WAL from the backup's start to its stop is archived. On a standby that WAL is
 * the primary's: its last segment is archived once the primary fills or switches it.
 */
async function waitForWal(storage: StorageDriver, timeline: number, firstSeg: number, lastSeg: number, segSize: number, timeoutMs: number, standby: boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let seg = firstSeg; seg <= lastSeg; seg++) {
    const name = segmentName(timeline, seg, segSize);
    for (;;) {
      if (await storage.head(objectKeyFor(parseWalFileName(name)!))) break;
      if (Date.now() > deadline) {
        throw new WalshipError(
          'REPOSITORY_UNAVAILABLE',
          `WAL segment ${name}, needed to make the backup consistent, was not archived within ${Math.round(timeoutMs / 1000)} s: ` +
            (standby
              ? 'the backup was taken from a standby, and the primary archives that segment once it fills or switches it: run SELECT pg_switch_wal() on the primary (or set archive_timeout there), and check its archiving (pg_stat_archiver); the backup is not usable until it is'
              : 'check archive_command (walship archive-push %p) and pg_stat_archiver; the backup is not usable until it is'),
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

export async function takeBackup(ctx: BackupContext, cfg: Config, opts: BackupOptions): Promise<BackupSummary> {
  await ctx.storage.check();
  const identity = await readIdentity(ctx.storage);
  const client = await connect(cfg, 'walship backup');
  const started = Date.now();
  const id = newBackupId(new Date(), randomBytes(2).toString('hex'));
  const label = opts.label ?? `walship ${id}`;
  let cat: Catalog | null = null;
  let inBackup = false;
  let begun: BackupStart | null = null;
  try {
    const srv = await serverFacts(client);
    if (identity && identity.systemIdentifier !== srv.systemIdentifier) {
      throw new WalshipError(
        'WRONG_CLUSTER',
        `the server has system identifier ${srv.systemIdentifier}, but repository ${ctx.storage.location} belongs to ${describeIdentity(identity)}`,
      );
    }
    const pgdata = opts.pgdata ?? srv.dataDirectory;
    await fsp.access(join(pgdata, 'PG_VERSION')).catch(() => {
      throw new WalshipError('USAGE', `${pgdata} is not readable as the server's data directory: run walship backup on the database host as its OS user, or pass --pgdata`);
    });
    cat = Catalog.open(ctx.catalogPath)!;
    cat.bindRepository(ctx.repoUrl, identity ?? undefined);

    const modern = srv.versionNum >= 150000;
    const start = await client.query(
      modern ? 'SELECT pg_backup_start($1, $2)::text AS lsn' : 'SELECT pg_start_backup($1, $2, false)::text AS lsn',
      [label, opts.fast],
    );
    inBackup = true;
    const startLsn = start.rows[0].lsn as string;
    const startTime = new Date().toISOString();
    const tl = Number((await client.query('SELECT timeline_id FROM pg_control_checkpoint()')).rows[0].timeline_id);
    const startDoc: BackupStart = { format: 1, id, label, startLsn, startTimeline: tl, startTime };
    begun = startDoc;
    cat.write('record the backup start', () => recordBackupStart(cat!, startDoc));
    // Any host learns of the backup from here on, also if this one dies without a word.
    await ctx.storage.putIfAbsent(backupKey(id, 'started.json'), Buffer.from(JSON.stringify(startDoc) + '\n'), { contentType: 'application/json' });
    logger.info('backup started', { id, label, start: startLsn, pgdata });

    const listed = await listDataDirectory(pgdata);
    const byPath = new Map(listed.files.map((f) => [f.path, f.abs]));
    // global/pg_control is read after every other file, in a chunk of its own: a backup taken on a
    // standby ends where the copy's minimum recovery point says, so PostgreSQL requires it to be
    // copied last (on a primary it does no harm).
    const chunks = planChunks(listed.files.filter((f) => f.path !== PG_CONTROL), opts.chunkBytes);
    const control = listed.files.filter((f) => f.path === PG_CONTROL);
    const files = new Map<string, ManifestFile>();
    const progress = new Progress(listed.files.reduce((a, f) => a + f.size, 0), opts.progress);
    let rawBytes = 0;
    let storedBytes = 0;
    const chunkSha256: Record<string, string> = {};
    await runPool(chunks, opts.parallel, async (c) => {
      const r = await storeChunk(ctx, id, c, byPath, files);
      chunkSha256[c.name] = r.sha256;
      rawBytes += r.raw;
      storedBytes += r.stored;
      progress.add(r.raw);
    });
    if (control.length > 0) {
      const c = { ...planChunks(control, opts.chunkBytes)[0]!, name: chunkName(chunks.length + 1) };
      chunks.push(c);
      const r = await storeChunk(ctx, id, c, byPath, files);
      chunkSha256[c.name] = r.sha256;
      rawBytes += r.raw;
      storedBytes += r.stored;
      progress.add(r.raw);
    }
    progress.done();

    const stop = await client.query(
      modern
        ? 'SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)'
        : 'SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, false)',
    );
    inBackup = false;
    const stopRow = stop.rows[0] as { lsn: string; labelfile: string; spcmapfile: string | null };
    const stopTime = new Date().toISOString();
    const backupLabel = stopRow.labelfile;
    const tablespaceMap = stopRow.spcmapfile && stopRow.spcmapfile.trim() !== '' ? stopRow.spcmapfile : null;
    // backup_label and tablespace_map, as restore must write them, in a last chunk of their own.
    const last = { name: chunkName(chunks.length + 1), items: [], rawBytes: 0 };
    const extra = [{ name: 'backup_label', data: Buffer.from(backupLabel) }];
    if (tablespaceMap) extra.push({ name: 'tablespace_map', data: Buffer.from(tablespaceMap) });
    const lastStored = await storeChunk(ctx, id, last, byPath, files, extra);
    storedBytes += lastStored.stored;
    chunkSha256[last.name] = lastStored.sha256;

    const manifest: Manifest = {
      format: 1,
      id,
      directories: listed.directories,
      tablespaces: listed.tablespaces,
      files: [...files.values()].sort((a, b) => (a.path < b.path ? -1 : 1)),
    };
    const manifestBody = Buffer.from(JSON.stringify(manifest));
    await ctx.storage.putIfAbsent(backupKey(id, 'manifest.json'), manifestBody, { contentType: 'application/json' });
    storedBytes += manifestBody.length;

    const labelInfo = parseBackupLabel(backupLabel);
    const stopLsnNum = parseLsn(stopRow.lsn)!;
    const startLsnNum = parseLsn(startLsn)!;
    logger.info('waiting for the WAL that makes the backup consistent', { stop: stopRow.lsn });
    if (srv.standby) logger.info('backup from a standby: its WAL is archived by the primary, the last segment once the primary fills or switches it', { stop: stopRow.lsn });
    await waitForWal(ctx.storage, tl, Math.floor(startLsnNum / srv.walSegmentSize), Math.floor((stopLsnNum - 1) / srv.walSegmentSize), srv.walSegmentSize, opts.archiveTimeoutMs, srv.standby);

    const summary: BackupSummary = {
      format: 1,
      id,
      label,
      systemIdentifier: srv.systemIdentifier,
      pgVersion: srv.version,
      pgMajor: Math.floor(srv.versionNum / 10000),
      startLsn,
      stopLsn: stopRow.lsn,
      checkpointLsn: labelInfo.checkpoint ? (labelInfo.checkpoint.split(' ')[0] ?? null) : null,
      startTimeline: labelInfo.startTimeline ?? tl,
      stopTimeline: tl,
      startTime,
      stopTime,
      startWal: segmentName(tl, Math.floor(startLsnNum / srv.walSegmentSize), srv.walSegmentSize),
      stopWal: segmentName(tl, Math.floor((stopLsnNum - 1) / srv.walSegmentSize), srv.walSegmentSize),
      files: manifest.files.length,
      rawBytes,
      storedBytes,
      durationMs: Date.now() - started,
      chunks: [...chunks.map((c) => c.name), last.name],
      chunkSha256,
      backupLabel,
      tablespaceMap,
    };
    await ctx.storage.putIfAbsent(backupKey(id, 'backup.json'), Buffer.from(JSON.stringify(summary, null, 2) + '\n'), { contentType: 'application/json' });
    recordBackup(cat, summary);
    logger.info('backup complete', { id, files: summary.files, raw: rawBytes, stored: storedBytes, ms: summary.durationMs });
    return summary;
  } catch (err) {
    if (inBackup) {
      await client.query(ABORT_BACKUP_SQL).catch(() => undefined);
    }
    if (cat && begun) {
      const message = err instanceof Error ? err.message : String(err);
      const failure: BackupFailure = { format: 1, id, error: message, failedAt: new Date().toISOString() };
      const startDoc = begun;
      // Each on its own: the original error matters more, and either record tells the hosts.
      try {
        cat.write('mark the backup failed', () => recordBackupFailure(cat!, startDoc, failure));
      } catch {
        /* the catalog may be what failed */
      }
      await ctx.storage.putIfAbsent(backupKey(id, 'failed.json'), Buffer.from(JSON.stringify(failure) + '\n'), { contentType: 'application/json' }).catch(() => undefined);
    }
    throw err;
  } finally {
    cat?.close();
    await client.end().catch(() => undefined);
  }
}

/** Ends a failed backup whichever API started it (closing the connection would end it too). */
const ABORT_BACKUP_SQL =
  "DO $$ BEGIN IF current_setting('server_version_num')::int >= 150000 THEN PERFORM pg_backup_stop(false); ELSE PERFORM pg_stop_backup(false, false); END IF; END $$";

export function recordBackup(cat: Catalog, s: BackupSummary): void {
  cat.write('record the backup', () => recordBackupComplete(cat, s));
}
