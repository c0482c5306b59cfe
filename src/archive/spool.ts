/**
 * The prefetch spool: the directory where the prefetcher (prefetcher.ts) keeps the next segments
 * recovery will ask for, verified, and archive-fetch (prefetch.ts) takes them from.
 *
 * The spool directory (`spool_dir`, default `walship-spool-<hash of the real pg_wal>` beside the
 * data directory, or beside pg_wal's real directory when pg_wal is a link elsewhere) holds, per
 * segment:
 *
 *   <name>            the segment, decompressed and verified (written as a temp file, renamed)
 *   <name>.meta       key=value lines (repo, name, size, sha256, boot, the archived object's and
 *                     the spooled file's state): written last, so its presence means complete
 *   <name>.fetching   while the prefetcher downloads it (a caller may wait for it)
 *   position          the segment recovery asked for last (written by every archive-fetch)
 *   prefetch.lock     {pid}: the one running prefetcher; its mtime is a heartbeat
 *   prefetch.log      the prefetcher's stderr
 */
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { privateDirOrSay, readPrivateFile } from '../local/private.js';
import { parseWalFileName } from '../wal/names.js';
import { lockHolderAlive } from './background.js';
import { fileStateFromPairs, fileStatePairs, statOrNull, type FileState } from './file-state.js';
import { formatKeyValues, parseKeyValues } from './key-values.js';
import { besideDataDir } from './beside.js';

/** The spool's own files besides the segments (the prefetcher's lock and log, recovery's position). */
export const SPOOL_LOCK = 'prefetch.lock';
export const SPOOL_POSITION = 'position';
export const SPOOL_LOG = 'prefetch.log';

/** The archived object file's size and mtime (filesystem repositories). */
export interface ObjectState {
  size: string;
  mtimeNs: string;
}

export interface SpoolMeta {
  name: string;
  repo: string;
  size: number;
  sha256: string;
  /** The machine's boot when it was written (Linux's boot_id; '' elsewhere). */
  boot: string;
  /** Filesystem repositories: the archived object file, and its state when it was spooled. */
  object?: ObjectState & { path: string };
  /** The spooled file as written (after its checksum was verified). */
  file: FileState;
}

/** The metadata's format (the first line). */
const META_FORMAT = '2';
export function metaText(m: SpoolMeta): string {
  return formatKeyValues([
    ['format', META_FORMAT],
    ['name', m.name],
    ['repo', m.repo],
    ['size', String(m.size)],
    ['sha256', m.sha256],
    ['spooled_at', new Date().toISOString()],
    ['boot', m.boot],
    ...(m.object
      ? ([
          ['object_path', m.object.path],
          ['object_size', m.object.size],
          ['object_mtime_ns', m.object.mtimeNs],
        ] as const)
      : []),
    ...fileStatePairs(m.file),
  ]);
}

/** The metadata at `path`: null when there is none, 'other' when it is not complete metadata of this format. */
export function readMeta(path: string): SpoolMeta | 'other' | null {
  const text = readPrivateFile(path);
  if (text === null) return null;
  const kv = parseKeyValues(text);
  const one = (k: string) => kv.get(k)?.[0];
  const [name, repo, sha256, boot, size] = [one('name'), one('repo'), one('sha256'), one('boot'), Number(one('size'))];
  const file = fileStateFromPairs(one);
  if (one('format') !== META_FORMAT || !name || !repo || !sha256 || boot === undefined || !Number.isSafeInteger(size) || !file) return 'other';
  const objectPath = one('object_path');
  return {
    name,
    repo,
    size,
    sha256,
    boot,
    file,
    ...(objectPath !== undefined && { object: { path: objectPath, size: one('object_size') ?? '', mtimeNs: one('object_mtime_ns') ?? '' } }),
  };
}

/**
 * This boot of the machine (Linux's boot_id), or null. Spooled files are not fsynced (PostgreSQL
 * fsyncs what restore_command delivers), so after a machine crash one may hold anything: a copy
 * written in another boot is never delivered.
 */
export async function bootId(): Promise<string | null> {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
  } catch {
    return null;
  }
}

/** A filesystem repository's object file for `name` (null for S3: no cheap look without the SDK). */
export async function objectPathFor(repo: string, name: string): Promise<string | null> {
  if (!repo.startsWith('file://')) return null;
  const { objectKeyFor } = await import('./keys.js');
  const file = parseWalFileName(name);
  if (!file) return null;
  return join(repo.slice('file://'.length), ...objectKeyFor(file).split('/'));
}

export async function objectStat(path: string | null): Promise<ObjectState | null> {
  const st = path === null ? null : await statOrNull(path);
  return st && { size: String(st.size), mtimeNs: String(st.mtimeNs) };
}

export const sameObject = (a: ObjectState | null | undefined, b: ObjectState | null | undefined) => !!a && !!b && a.size === b.size && a.mtimeNs === b.mtimeNs;

/**
 * Where deliveries to `dest` are spooled by default: `walship-spool-<hash>` beside the data
 * directory (beside.ts), on pg_wal's filesystem.
 */
export function spoolPlace(dest: string): { destDir: string; cwd: string; spool: string } {
  const destDir = realpathSync(dirname(resolve(dest)));
  const { cwd, dir } = besideDataDir(destDir, 'walship-spool');
  return { destDir, cwd, spool: dir };
}

/** Whether a prefetcher holds the spool: its pid is alive and its heartbeat is recent. */
export function prefetcherAlive(spool: string): Promise<boolean> {
  return lockHolderAlive(spool, SPOOL_LOCK);
}

/**
 * Whether `spool` can be used: a private directory of this user's (local/private.ts), created
 * when missing. When it is not, says so: the call is answered from the repository alone.
 */
export function spoolUsable(spool: string): boolean {
  const state = privateDirOrSay(spool, {
    create: true,
    what: 'the prefetch spool',
    without: 'fetching from the repository without prefetch',
    remedy: 'remove it, or set spool_dir to a directory only this user can write',
  });
  return state === 'ok';
}

