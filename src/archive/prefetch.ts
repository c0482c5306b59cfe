/**
 * Fetch prefetch, the call's side: recovery asks restore_command for one segment at a time; a
 * background prefetcher (prefetcher.ts) keeps the next ones ready, verified, in the spool
 * (spool.ts), and each archive-fetch moves its segment into place with one rename.
 *
 * archive-fetch of segment N looks only at the files named for N (no listing). A spooled copy is
 * delivered only when its metadata names this repository and N, and the file is still the very
 * one the prefetcher wrote after verifying it against the archive (SHA-256, size, cluster): same
 * inode, size, mtime and ctime, so any write to it or replacement of it is noticed without
 * reading it again. On a filesystem repository, one stat of the archived object also proves it
 * is unchanged since. Anything else is discarded and N is fetched from the repository as
 * without prefetch. So the spool makes a fetch faster but never changes its answer: a file not
 * in the archive is never spooled (exit 1 still comes from the repository), and every failure is
 * still reported by the repository fetch.
 *
 * After a successful fetch, if no prefetcher is alive, archive-fetch starts one: in the agent when
 * the agent answers the call, else a detached `walship archive-prefetch N` (stdio not
 * PostgreSQL's).
 */
import { existsSync, lstatSync, renameSync, rmSync, statSync, type BigIntStats, promises as fsp } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { writeFileAtomicSync } from '../local/atomic-write.js';
import { trustProblem } from '../local/private.js';
import type { Config } from '../config.js';
import { repoCanonical, type ArchiveContext } from './context.js';
import { logger } from '../log.js';
import { parseWalFileName } from '../wal/names.js';
import { startDetached } from './background.js';
import { sameFileState } from './file-state.js';
import { SPOOL_LOG, SPOOL_POSITION, bootId, objectPathFor, objectStat, prefetcherAlive, readMeta, sameObject, spoolPlace, spoolUsable } from './spool.js';

/** How long archive-fetch waits for a segment the prefetcher is downloading. */
const WAIT_INFLIGHT_MS = 30_000;
const POLL_MS = 10;

type FetchCtx = Omit<ArchiveContext, 'compressLevel'>;

const sha256 = async (b: Buffer) => (await import('node:crypto')).createHash('sha256').update(b).digest('hex');

/**
 * The per-call path (archive-fetch from the spool) uses synchronous file calls: a one-shot
 * process gains nothing from the thread pool, and each round trip through it costs time.
 */
function rmQuietly(...paths: string[]): void {
  for (const p of paths) {
    try {
      rmSync(p, { force: true });
    } catch {
      /* already gone, or not ours to delete */
    }
  }
}

/** After a failed rename the file may be at either place. */
function existsSyncOr(a: string, b: string): string {
  return existsSync(b) ? b : a;
}

async function exists(path: string): Promise<boolean> {
  return existsSync(path);
}

/**
 * Delivers `name` from the spool to `dest` when a good copy is there (or is being downloaded by
 * a live prefetcher). Returns false when it is not; a damaged or foreign copy is deleted.
 */
async function takeSpooled(spool: string, name: string, dest: string, repo: string): Promise<boolean> {
  const metaPath = join(spool, `${name}.meta`);
  const dataPath = join(spool, name);
  let meta = readMeta(metaPath);
  if (!meta && (await exists(join(spool, `${name}.fetching`))) && (await prefetcherAlive(spool))) {
    const deadline = Date.now() + WAIT_INFLIGHT_MS;
    let nextLiveCheck = Date.now() + 500;
    for (;;) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      meta = readMeta(metaPath);
      if (meta || Date.now() > deadline || !(await exists(join(spool, `${name}.fetching`)))) break;
      if (Date.now() > nextLiveCheck) {
        if (!(await prefetcherAlive(spool))) break;
        nextLiveCheck = Date.now() + 500;
      }
    }
    meta ??= readMeta(metaPath);
  }
  if (!meta) return false;
  const discard = async (why: string) => {
    logger.warn(`spooled copy not used (${why}); fetching it from the repository`, { file: name });
    rmQuietly(dataPath, metaPath);
    return false;
  };
  if (meta === 'other' || meta.name !== name || meta.repo !== repo) {
    return discard('its metadata is for another file or repository');
  }
  if ((meta.boot || null) !== (await bootId())) return discard('it was written before the machine restarted');
  // A filesystem repository: one stat proves the archived object is still the one spooled (so
  // an object deleted or replaced since is reported by the repository fetch, as without prefetch).
  const objPath = await objectPathFor(repo, name);
  if (objPath !== null) {
    if (meta.object?.path !== objPath || !sameObject(await objectStat(objPath), meta.object)) {
      return discard('the archived object changed since it was spooled');
    }
  }
  // The copy must be the very file the prefetcher verified: same inode, size, mtime and ctime
  // (any write to it, or a replacement, changes one of them). Then it moves into place.
  let st: BigIntStats;
  try {
    st = lstatSync(dataPath, { bigint: true });
  } catch {
    rmQuietly(metaPath);
    return false;
  }
  if (!st.isFile() || !sameFileState(meta.file, st)) {
    return discard('it changed since it was verified');
  }
  // This user's and writable by no one else.
  const problem = trustProblem(st, 'file');
  if (problem !== null) return discard(`the spooled file ${problem}`);
  const target = resolve(dest);
  let moved = false;
  try {
    renameSync(dataPath, target);
    // Still the inode that was checked (nothing replaced the spooled file in between)?
    moved = statSync(target, { bigint: true }).ino === st.ino;
  } catch {
    /* another filesystem (EXDEV), or the prefetcher cleaned it up meanwhile */
  }
  if (!moved) {
    // Deliver the verified bytes the slow way: read what is there, check it against the checksum.
    let data: Buffer;
    try {
      data = await fsp.readFile(existsSyncOr(target, dataPath));
    } catch {
      rmQuietly(metaPath);
      return false;
    }
    if ((await sha256(data)) !== meta.sha256) return discard('its checksum differs from the archived file\'s');
    const { deliver } = await import('./fetch.js');
    await deliver(target, data);
  }
  rmQuietly(metaPath);
  logger.debug('delivered from the prefetch spool', { file: name, dest });
  return true;
}

/** Records the segment recovery asked for last (in the spool, a private directory); false when it cannot. */
function notePosition(spool: string, name: string): boolean {
  try {
    writeFileAtomicSync(join(spool, SPOOL_POSITION), name);
    return true;
  } catch (err) {
    logger.debug('cannot write the prefetch position; prefetch is off for this call', { spool, error: (err as Error).message });
    return false;
  }
}

/**
 * Who runs a prefetcher for `spool` from `name` on, logging to `logPath` (the agent runs it
 * itself). False: none was started (an agent on its way will, for the next calls).
 */
export type StartPrefetcher = (spool: string, name: string, logPath: string) => Promise<boolean>;

/** A prefetcher in a process of its own, started with the call's setting flags. */
export const detachedPrefetcher =
  (flagArgs: readonly string[]): StartPrefetcher =>
  async (spool, name, log) => {
    await startDetached(['archive-prefetch', name, ...flagArgs, '--spool-dir', spool], log, 'prefetcher');
    return true;
  };

/** Starts a prefetcher unless one is alive: by `start`, else a detached one. */
async function ensurePrefetcher(spool: string, name: string, flagArgs: string[], start?: StartPrefetcher): Promise<void> {
  if (await prefetcherAlive(spool)) return;
  await (start ?? detachedPrefetcher(flagArgs))(spool, name, join(spool, SPOOL_LOG));
}

/**
 * archive-fetch with prefetch. `makeCtx` opens the repository lazily: a delivery from the spool
 * never loads a storage driver, the catalog or zstd. `flagArgs` (the setting flags as given) are
 * passed on to the prefetcher it starts: detached, or by `startPrefetcher` (the agent runs it).
 */
export async function archiveFetchWithPrefetch(
  cfg: Config,
  name: string,
  dest: string,
  makeCtx: () => Promise<FetchCtx>,
  flagArgs: string[],
  startPrefetcher?: StartPrefetcher,
): Promise<void> {
  // fetch.js (catalog, zstd, storage) is loaded only by calls that go to the repository.
  const fetchFile = async (ctx: FetchCtx) => (await import('./fetch.js')).fetchFile(ctx, name, dest);
  const file = parseWalFileName(name);
  // Only PostgreSQL's own recovery (which restores every segment as pg_wal/RECOVERYXLOG) reads
  // WAL in order; a fetch to any other place is a one-off and starts nothing.
  if (cfg.fetch_prefetch <= 0 || file?.kind !== 'segment' || basename(dest) !== 'RECOVERYXLOG') {
    await fetchFile(await makeCtx());
    return;
  }
  const repo = repoCanonical(cfg);
  let place: ReturnType<typeof spoolPlace> | null = null;
  try {
    place = spoolPlace(dest);
  } catch {
    /* dest's directory is not there: fetchFile reports it */
  }
  const given = cfg.spool_dir ? resolve(cfg.spool_dir) : place?.spool;
  const spool = given !== undefined && spoolUsable(given) ? given : undefined;
  const delivered = spool !== undefined && (await takeSpooled(spool, name, dest, repo));
  if (!delivered) await fetchFile(await makeCtx());
  if (spool === undefined || !notePosition(spool, name)) return;
  await ensurePrefetcher(spool, name, flagArgs, startPrefetcher);
}
