/**
 * Restores one of walship's base backups into a data directory and prepares it for recovery.
 *
 * Chunks are downloaded and unpacked a few at a time (decompressed and checked on a thread per
 * core); every piece is checked against the manifest's SHA-256 before it is written. global/pg_control is written last, once everything
 * else is verified, so a restore that stops half-way leaves a directory PostgreSQL refuses to
 * start instead of one it would take for a crashed primary.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { WalshipError, describeSystemError } from '../errors.js';
import { logger } from '../log.js';
import type { StorageDriver } from '../storage/driver.js';
import { PG_CONTROL, type BackupSummary } from '../backup/format.js';
import { fetchChunk, pieceKey, piecesByChunk, piecesOf, readBackup } from '../backup/read.js';
import { startChunkThreads } from '../backup/chunk-threads.js';
import { Progress } from '../backup/progress.js';
import { runPool } from '../pool.js';
import { processAlive } from '../pid.js';
import { writeFileAtomic } from '../local/atomic-write.js';

export interface RestoreOptions {
  pgdata: string;
  /** Empty a non-empty data directory first (never one with a running server). */
  force: boolean;
  /** Tablespace oid → new location. */
  tablespaceRemap: Map<string, string>;
  /** standby.signal instead of recovery.signal. */
  standby: boolean;
  /** postgresql.conf lines for recovery (restore_command, targets, ...). */
  recoveryConf: string[];
  parallel: number;
  progress: boolean;
}

export interface RestoreResult {
  backup: BackupSummary;
  pgdata: string;
  files: number;
  bytes: number;
  tablespaces: { oid: string; location: string }[];
}

async function prepareDataDir(pgdata: string, force: boolean): Promise<void> {
  let entries: string[] = [];
  try {
    entries = await fsp.readdir(pgdata);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new WalshipError('USAGE', `cannot read ${pgdata}: ${describeSystemError(err)}`);
  }
  if (entries.length > 0) {
    if (!force) {
      throw new WalshipError('USAGE', `${pgdata} is not empty: restore into an empty or new directory, or pass --force to empty it first`);
    }
    const pid = await fsp.readFile(join(pgdata, 'postmaster.pid'), 'utf8').catch(() => null);
    const n = pid ? Number(pid.split('\n')[0]) : NaN;
    if (Number.isInteger(n) && n > 0 && processAlive(n)) {
      throw new WalshipError('USAGE', `a server (pid ${n}) is running in ${pgdata}: stop it before restoring over it`);
    }
    for (const e of entries) await fsp.rm(join(pgdata, e), { recursive: true, force: true });
  }
  await fsp.mkdir(pgdata, { recursive: true, mode: 0o700 });
  await fsp.chmod(pgdata, 0o700);
}

/** Where a manifest path lands: under the data directory, or under a (remapped) tablespace. */
function destination(path: string, pgdata: string, spc: Map<string, string>): string {
  const m = /^pg_tblspc\/(\d+)\/(.*)$/.exec(path);
  if (m && spc.has(m[1]!)) return join(spc.get(m[1]!)!, m[2]!);
  return join(pgdata, path);
}

export async function restoreBackup(storage: StorageDriver, id: string, opts: RestoreOptions): Promise<RestoreResult> {
  const pgdata = resolve(opts.pgdata);
  const { summary, manifest } = await readBackup(storage, id);

  // Tablespaces: their own (possibly remapped) empty directories, linked from pg_tblspc.
  // Checked before anything is written.
  const spc = new Map<string, string>();
  for (const oid of opts.tablespaceRemap.keys()) {
    if (!manifest.tablespaces.some((t) => t.oid === oid)) {
      throw new WalshipError('USAGE', `--tablespace ${oid}: backup ${id} has no tablespace ${oid} (it has: ${manifest.tablespaces.map((t) => t.oid).join(', ') || 'none'})`);
    }
  }
  for (const t of manifest.tablespaces) {
    const loc = resolve(opts.tablespaceRemap.get(t.oid) ?? t.location);
    const existing = await fsp.readdir(loc).catch(() => []);
    if (existing.length > 0) {
      throw new WalshipError('USAGE', `tablespace ${t.oid} location ${loc} is not empty: empty it, or remap it with --tablespace ${t.oid}=DIR`);
    }
    spc.set(t.oid, loc);
  }
  await prepareDataDir(pgdata, opts.force);
  for (const loc of spc.values()) await fsp.mkdir(loc, { recursive: true, mode: 0o700 });
  for (const d of manifest.directories) {
    if (/^pg_tblspc\/\d+$/.test(d.path)) continue;
    await fsp.mkdir(destination(d.path, pgdata, spc), { recursive: true, mode: d.mode || 0o700 });
  }
  await fsp.mkdir(join(pgdata, 'pg_tblspc'), { recursive: true, mode: 0o700 });
  for (const [oid, loc] of spc) await fsp.symlink(loc, join(pgdata, 'pg_tblspc', oid));

  // Which manifest piece each tar entry of each chunk is.
  const pieces = piecesOf(manifest);
  const byChunk = piecesByChunk(pieces, summary.chunks);
  const seen = new Set<string>();
  const held: { pgControl: Buffer | null } = { pgControl: null };
  const progress = new Progress(summary.rawBytes, opts.progress);

  // This thread reads and writes; chunk threads decompress and check (backup/chunk-threads.ts).
  const threads = await startChunkThreads(opts.parallel);
  const restoreChunk = async (chunk: string): Promise<void> => {
    const body = await fetchChunk(storage, id, chunk);
    const { entries } = await threads.unpack({ id, chunk, body, pieces: [...(byChunk.get(chunk) ?? [])], then: 'restore stopped' });
    // Several files written at once: the writes overlap with the other chunks' unpacking.
    await runPool(entries, 8, async ({ entry, data, ref }) => {
      const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      seen.add(pieceKey(chunk, entry));
      progress.add(buf.length);
      if (ref.file.path === PG_CONTROL) held.pgControl = buf;
      else await writeAt(destination(ref.file.path, pgdata, spc), buf, ref.piece.offset, ref.file.mode);
    });
  };
  try {
    await runPool(summary.chunks, opts.parallel, restoreChunk);
  } finally {
    await threads.close();
  }
  progress.done();
  for (const key of pieces.keys()) {
    if (!seen.has(key)) {
      const { file } = pieces.get(key)!;
      throw new WalshipError('OBJECT_CORRUPT', `backup ${id}: ${file.path} is listed in the manifest but missing from its chunk; restore stopped`);
    }
  }
  for (const f of manifest.files) {
    if (f.path === PG_CONTROL) continue;
    const dest = destination(f.path, pgdata, spc);
    await fsp.truncate(dest, f.size).catch(() => undefined);
    await fsp.utimes(dest, new Date(f.mtime), new Date(f.mtime)).catch(() => undefined);
  }

  // What recovery needs: backup_label, tablespace_map (with the new locations), the signal
  // file and the recovery settings; pg_control last.
  await writeFileAtomic(join(pgdata, 'backup_label'), summary.backupLabel);
  if (summary.tablespaceMap) {
    const map = summary.tablespaceMap
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        const oid = l.split(' ')[0]!;
        return spc.has(oid) ? `${oid} ${spc.get(oid)}` : l;
      })
      .join('\n');
    // PostgreSQL (re)creates pg_tblspc's links from tablespace_map when recovery starts.
    await writeFileAtomic(join(pgdata, 'tablespace_map'), map + '\n');
  }
  await writeFileAtomic(join(pgdata, opts.standby ? 'standby.signal' : 'recovery.signal'), '');
  const auto = join(pgdata, 'postgresql.auto.conf');
  const before = await fsp.readFile(auto, 'utf8').catch(() => '');
  await writeFileAtomic(
    auto,
    `${before}${before.endsWith('\n') || before === '' ? '' : '\n'}# Added by walship restore of backup ${id} at ${new Date().toISOString()}\n${opts.recoveryConf.join('\n')}\n`,
  );
  if (!held.pgControl) throw new WalshipError('OBJECT_CORRUPT', `backup ${id} has no ${PG_CONTROL}; it cannot be restored`);
  await writeAt(join(pgdata, PG_CONTROL), held.pgControl, 0, 0o600);
  logger.info('restored', { backup: id, pgdata, files: manifest.files.length });
  return { backup: summary, pgdata, files: manifest.files.length, bytes: summary.rawBytes, tablespaces: [...spc].map(([oid, location]) => ({ oid, location })) };
}

async function writeAt(path: string, data: Buffer, offset: number, mode: number): Promise<void> {
  try {
    await fsp.mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const fh = await fsp.open(path, fsc.O_WRONLY | fsc.O_CREAT, mode & 0o777 || 0o600);
    try {
      await fh.write(data, 0, data.length, offset);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new WalshipError('DEST_UNWRITABLE', `cannot write ${path}: ${describeSystemError(err)}`);
  }
}
