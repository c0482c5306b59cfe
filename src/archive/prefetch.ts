/**
 * Fetch prefetch: recovery asks restore_command for one segment at a time; a background
 * prefetcher keeps the next ones ready, verified, in a spool directory beside pg_wal, and each
 * archive-fetch moves its segment into place with one rename.
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
 * After a successful fetch, if no prefetcher is alive, archive-fetch starts one (a detached
 * `walship archive-prefetch N`, stdio not PostgreSQL's). It follows `position` and keeps
 * segments position+1 .. position+K of the same timeline spooled (K = fetch_prefetch, bounded by
 * spool_max_bytes), through the ordinary fetchFile (catalog checksum, object checksum, cluster
 * identity). It deletes spooled files behind the position, beyond the window or on another
 * timeline, and when recovery has not asked for anything for a while it empties the spool and
 * exits.
 */
import { existsSync, lstatSync, readFileSync, realpathSync, renameSync, rmSync, statSync, type BigIntStats, promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { isAbandonedTemp, isTempName, writeFileAtomic, writeFileAtomicSync } from '../local/atomic-write.js';
import { privateDirOrSay, readPrivateFile, trustProblem } from '../local/private.js';
import type { Config } from '../config.js';
import { repoCanonical } from './context.js';
import { WalshipError, asWalshipError } from '../errors.js';
import { logger } from '../log.js';
import { parseWalFileName, segNoFromLogSeg, segmentName } from '../wal/names.js';
import type { ArchiveContext } from './push.js';
import { HEARTBEAT_MS, acquireLock, heartbeat, lockHolderAlive, lowerPriority, releaseLock, startDetached } from './background.js';
import { fileState, fileStateFromPairs, fileStatePairs, sameFileState, statOrNull, type FileState } from './file-state.js';
import { formatKeyValues, parseKeyValues } from './key-values.js';
import { besideDataDir } from './beside.js';
import { openLanes, type Lane } from './lanes.js';

const LOCK = 'prefetch.lock';
const POSITION = 'position';
const LOG = 'prefetch.log';
/** The prefetcher exits (emptying the spool) when recovery has asked for nothing this long. */
export const PREFETCH_IDLE_MS = 15_000;
/** How long archive-fetch waits for a segment the prefetcher is downloading. */
const WAIT_INFLIGHT_MS = 30_000;
const POLL_MS = 10;
/** After "not in the archive", the prefetcher asks again this much later. */
const MISSING_RETRY_MS = 1_000;
/** After another failure, this much later (archive-fetch reports the failure itself). */
const FAILED_RETRY_MS = 5_000;
/**
 * The prefetcher's nice value. Recovery waits on PostgreSQL's startup process, which replays the
 * WAL on one core; the prefetcher only has to stay ahead of it. At a lower priority it takes the
 * CPU the replay leaves, and does not slow the replay down where cores are few.
 */
const PREFETCH_NICE = 10;

type FetchCtx = Omit<ArchiveContext, 'compressLevel'>;

/** The archived object file's size and mtime (filesystem repositories). */
interface ObjectState {
  size: string;
  mtimeNs: string;
}

interface SpoolMeta {
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
function metaText(m: SpoolMeta): string {
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
function readMeta(path: string): SpoolMeta | 'other' | null {
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
async function bootId(): Promise<string | null> {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
  } catch {
    return null;
  }
}

/** A filesystem repository's object file for `name` (null for S3: no cheap look without the SDK). */
async function objectPathFor(repo: string, name: string): Promise<string | null> {
  if (!repo.startsWith('file://')) return null;
  const { objectKeyFor } = await import('./keys.js');
  const file = parseWalFileName(name);
  if (!file) return null;
  return join(repo.slice('file://'.length), ...objectKeyFor(file).split('/'));
}

async function objectStat(path: string | null): Promise<ObjectState | null> {
  const st = path === null ? null : await statOrNull(path);
  return st && { size: String(st.size), mtimeNs: String(st.mtimeNs) };
}

const sameObject = (a: ObjectState | null | undefined, b: ObjectState | null | undefined) => !!a && !!b && a.size === b.size && a.mtimeNs === b.mtimeNs;

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

/**
 * Where deliveries to `dest` are spooled by default: `walship-spool-<hash>` beside the data
 * directory (beside.ts), on pg_wal's filesystem.
 */
export function spoolPlace(dest: string): { destDir: string; cwd: string; spool: string } {
  const destDir = realpathSync(dirname(resolve(dest)));
  const { cwd, dir } = besideDataDir(destDir, 'walship-spool');
  return { destDir, cwd, spool: dir };
}

async function exists(path: string): Promise<boolean> {
  return existsSync(path);
}

/** Whether a prefetcher holds the spool: its pid is alive and its heartbeat is recent. */
export function prefetcherAlive(spool: string): Promise<boolean> {
  return lockHolderAlive(spool, LOCK);
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
    writeFileAtomicSync(join(spool, POSITION), name);
    return true;
  } catch (err) {
    logger.debug('cannot write the prefetch position; prefetch is off for this call', { spool, error: (err as Error).message });
    return false;
  }
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

/** Starts a detached prefetcher unless one is alive. */
async function ensurePrefetcher(spool: string, name: string, flagArgs: string[]): Promise<void> {
  if (await prefetcherAlive(spool)) return;
  await startDetached(['archive-prefetch', name, ...flagArgs, '--spool-dir', spool], join(spool, LOG), 'prefetcher');
}

/**
 * archive-fetch with prefetch. `makeCtx` opens the repository lazily: a delivery from the spool
 * never loads a storage driver, the catalog or zstd.
 */
export async function archiveFetchWithPrefetch(
  cfg: Config,
  name: string,
  dest: string,
  makeCtx: () => Promise<FetchCtx>,
  flagArgs: string[],
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
  await ensurePrefetcher(spool, name, flagArgs);
}

// ---------------------------------------------------------------------------------------------
// The prefetcher process (walship archive-prefetch NAME --spool-dir DIR ...)

interface Position {
  name: string;
  timeline: number;
  segNo: number;
}

function positionOf(name: string, segSize: number): Position | null {
  const f = parseWalFileName(name.trim());
  if (!f || f.kind !== 'segment') return null;
  return { name: f.name, timeline: f.timeline, segNo: segNoFromLogSeg(f.logSeg!, segSize) };
}

/**
 * Runs the prefetcher until recovery stops asking. Never throws for a segment it cannot get:
 * archive-fetch then fetches that segment itself and reports what is wrong.
 */
export async function runPrefetcher(cfg: Config, startName: string, makeCtx: () => Promise<FetchCtx>): Promise<void> {
  if (!cfg.spool_dir) throw new WalshipError('USAGE', 'archive-prefetch needs --spool-dir');
  const spool = resolve(cfg.spool_dir);
  await lowerPriority(PREFETCH_NICE);
  if (!spoolUsable(spool)) return;
  if (!(await acquireLock(spool, LOCK))) {
    logger.debug('another prefetcher holds the spool', { spool });
    return;
  }
  const inWindow = new Set<string>();
  let lockLost = false;
  let lanes: Awaited<ReturnType<typeof openLanes>> | undefined;
  try {
    const ctx = await makeCtx();
    const { readIdentity } = await import('./identity.js');
    const identity = await readIdentity(ctx.storage);
    if (!identity) return;
    const segSize = identity.walSegmentSize;
    const window = Math.min(cfg.fetch_prefetch, Math.floor(cfg.spool_max_bytes / segSize));
    if (window < 1) {
      logger.warn('spool_max_bytes is smaller than one segment: nothing to prefetch', { spool_max_bytes: cfg.spool_max_bytes });
      return;
    }
    const concurrency = ctx.repoUrl.startsWith('s3://') ? 4 : 2;
    let pos = positionOf(startName, segSize);
    if (!pos) return;
    // Decompressing and checksumming are CPU work: the files in flight are spread over a lane per core.
    const noPush = () => Promise.reject(new Error('the prefetcher does not push'));
    lanes = await openLanes(cfg, 'archive-prefetch', concurrency, noPush, async () => ctx);
    const load = new Map<Lane, number>();
    logger.info('prefetcher started', { spool, from: pos.name, window, pid: process.pid });

    const spooled = new Set<string>();
    const inflight = new Set<string>();
    let fetched = 0;
    let wake: (() => void) | undefined;
    const retryAt = new Map<string, number>();

    const windowNames = (p: Position) => Array.from({ length: window }, (_, i) => segmentName(p.timeline, p.segNo + 1 + i, segSize));
    const clean = async (p: Position): Promise<void> => {
      inWindow.clear();
      for (const n of windowNames(p)) inWindow.add(n);
      let entries: string[];
      try {
        entries = await fsp.readdir(spool);
      } catch {
        return;
      }
      for (const e of entries) {
        if (e === LOCK || e === POSITION || e === LOG) continue;
        if (e.startsWith('.')) {
          // A temporary file: those of live processes are in flight (kept), others are left by a killed one.
          if (isAbandonedTemp(e)) await fsp.rm(join(spool, e), { force: true }).catch(() => undefined);
          continue;
        }
        const base = e.replace(/\.(meta|fetching)$/, '');
        if (inWindow.has(base)) continue;
        if (e.endsWith('.fetching') && inflight.has(base)) continue;
        await fsp.rm(join(spool, e), { force: true }).catch(() => undefined);
        spooled.delete(base);
      }
      for (const n of [...spooled]) if (!inWindow.has(n)) spooled.delete(n);
      for (const n of [...retryAt.keys()]) if (!inWindow.has(n)) retryAt.delete(n);
    };

    const prefetchOne = async (n: string): Promise<void> => {
      const marker = join(spool, `${n}.fetching`);
      try {
        await writeFileAtomic(marker, '');
        const objPath = await objectPathFor(ctx.repoUrl, n);
        const before = await objectStat(objPath);
        const lane = lanes!.lanes.reduce((a, b) => ((load.get(b) ?? 0) < (load.get(a) ?? 0) ? b : a));
        load.set(lane, (load.get(lane) ?? 0) + 1);
        const outcome = await lane.run({ op: 'fetch', name: n, dest: join(spool, n) });
        load.set(lane, load.get(lane)! - 1);
        if (!outcome.ok) throw outcome.error;
        const res = outcome.result;
        const object = await objectStat(objPath);
        if (objPath !== null && !sameObject(before, object)) {
          throw new WalshipError('REPOSITORY_UNAVAILABLE', `archived ${n} changed while it was being prefetched`);
        }
        const meta: SpoolMeta = {
          name: n,
          repo: ctx.repoUrl,
          size: res.rawSize,
          sha256: res.sha256,
          boot: (await bootId()) ?? '',
          ...(objPath !== null && object && { object: { path: objPath, ...object } }),
          file: fileState(await fsp.stat(join(spool, n), { bigint: true })),
        };
        await writeFileAtomic(join(spool, `${n}.meta`), metaText(meta));
        fetched++;
        if (inWindow.has(n)) spooled.add(n);
        else await Promise.all([fsp.rm(join(spool, n), { force: true }), fsp.rm(join(spool, `${n}.meta`), { force: true })]);
        retryAt.delete(n);
      } catch (err) {
        await fsp.rm(join(spool, n), { force: true }).catch(() => undefined);
        const we = asWalshipError(err);
        if (we.code === 'NOT_IN_ARCHIVE') {
          retryAt.set(n, Date.now() + MISSING_RETRY_MS);
        } else {
          logger.warn('cannot prefetch; archive-fetch will fetch it itself', { file: n, error: we.message, code: we.code });
          retryAt.set(n, Date.now() + FAILED_RETRY_MS);
        }
      } finally {
        inflight.delete(n);
        await fsp.rm(marker, { force: true }).catch(() => undefined);
        // A lane is free: the loop starts the next file now, not at its next tick.
        wake?.();
      }
    };

    await clean(pos);
    let lastMove = Date.now();
    let lastBeat = Date.now();
    for (;;) {
      const now = Date.now();
      if (now - lastBeat >= HEARTBEAT_MS) {
        if (!(await heartbeat(spool, LOCK))) {
          logger.info('the prefetch lock was taken away; exiting', { spool });
          lockLost = true;
          return;
        }
        lastBeat = now;
      }
      const text = await fsp.readFile(join(spool, POSITION), 'utf8').catch(() => null);
      const asked = text === null ? null : positionOf(text, segSize);
      if (asked && asked.name !== pos.name) {
        pos = asked;
        lastMove = now;
        await clean(pos);
      }
      if (inflight.size === 0 && now - lastMove > PREFETCH_IDLE_MS) break;
      for (const n of windowNames(pos)) {
        // In flight counts too: a file still arriving for a window recovery has moved past takes
        // its room until it lands and is dropped, so the spool never holds more than the window.
        if (inflight.size >= concurrency || spooled.size + inflight.size >= window) break;
        if (spooled.has(n) || inflight.has(n)) continue;
        const at = retryAt.get(n);
        if (at !== undefined && at > now) break; // missing or failing: nothing after it is useful yet
        inflight.add(n);
        void prefetchOne(n);
      }
      await new Promise<void>((r) => {
        const timer = setTimeout(r, POLL_MS * 2);
        wake = () => {
          clearTimeout(timer);
          r();
        };
      });
      wake = undefined;
    }
    const cpu = process.cpuUsage();
    logger.info('recovery is not asking for more; prefetcher exits', {
      spool,
      last: pos.name,
      spooled: fetched,
      cpu_user_ms: Math.round(cpu.user / 1000),
      cpu_sys_ms: Math.round(cpu.system / 1000),
    });
  } finally {
    if (lanes) await Promise.all(lanes.lanes.map((l) => l.close()));
    if (!lockLost) await emptySpool(spool);
  }
}

/** Deletes every spooled segment and the prefetcher's own files, then releases the lock. */
async function emptySpool(spool: string): Promise<void> {
  let entries: string[] = [];
  try {
    entries = await fsp.readdir(spool);
  } catch {
    return;
  }
  for (const e of entries) {
    if (e === LOCK || e === LOG || (isTempName(e) && !isAbandonedTemp(e))) continue;
    await fsp.rm(join(spool, e), { force: true }).catch(() => undefined);
  }
  await releaseLock(spool, LOCK);
}

