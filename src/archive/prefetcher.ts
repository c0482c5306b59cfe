/**
 * The prefetcher (`walship archive-prefetch NAME --spool-dir DIR ...` started by archive-fetch,
 * prefetch.ts; or run in the agent). It follows the spool's `position` and keeps segments
 * position+1 .. position+K of the same timeline spooled (K = fetch_prefetch, bounded by
 * spool_max_bytes), through the ordinary fetchFile (catalog checksum, object checksum, cluster
 * identity) on a lane per core. It deletes spooled files behind the position, beyond the window
 * or on another timeline, and when recovery has not asked for anything for a while it empties the
 * spool and exits.
 */
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { isAbandonedTemp, isTempName, writeFileAtomic } from '../local/atomic-write.js';
import type { Config } from '../config.js';
import type { ArchiveContext } from './context.js';
import { WalshipError, asWalshipError } from '../errors.js';
import { logger } from '../log.js';
import { parseWalFileName, segNoFromLogSeg, segmentName } from '../wal/names.js';
import { HEARTBEAT_MS, acquireLock, heartbeat, lowerPriority, releaseLock } from './background.js';
import { fileState } from './file-state.js';
import { openLanes, type Lane } from './lanes.js';
import { fetchCost, filesInFlight } from './memory.js';
import { SPOOL_LOCK, SPOOL_LOG, SPOOL_POSITION, bootId, metaText, objectPathFor, objectStat, sameObject, spoolUsable, type SpoolMeta } from './spool.js';

/** The prefetcher exits (emptying the spool) when recovery has asked for nothing this long. */
export const PREFETCH_IDLE_MS = 15_000;
/** How often it looks at the position (a lane that finishes wakes it sooner). */
const POLL_MS = 20;
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
 * archive-fetch then fetches that segment itself and reports what is wrong. In the agent
 * (`inAgent`): its fetches run on worker threads only, each at PREFETCH_NICE (the agent's thread
 * answers calls meanwhile, at its own priority), which write their lines to its log (`logFd`).
 */
export async function runPrefetcher(cfg: Config, startName: string, makeCtx: () => Promise<FetchCtx>, inAgent?: { logFd: number }): Promise<void> {
  if (!cfg.spool_dir) throw new WalshipError('USAGE', 'archive-prefetch needs --spool-dir');
  const spool = resolve(cfg.spool_dir);
  // A process of its own runs at PREFETCH_NICE; in the agent, only its fetching threads do.
  if (!inAgent) await lowerPriority(PREFETCH_NICE);
  if (!spoolUsable(spool)) return;
  if (!(await acquireLock(spool, SPOOL_LOCK))) {
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
    // A few fetches at once (more against S3's latency), as many as memory_max holds (memory.ts).
    const concurrency = filesInFlight(cfg.memory_max, fetchCost(segSize), ctx.repoUrl.startsWith('s3://') ? 4 : 2);
    let pos = positionOf(startName, segSize);
    if (!pos) return;
    // Decompressing and checksumming are CPU work: the files in flight are spread over a lane per core.
    const noPush = () => Promise.reject(new Error('the prefetcher does not push'));
    lanes = await openLanes(cfg, 'archive-prefetch', concurrency, noPush, async () => ctx, !inAgent, inAgent?.logFd, inAgent ? PREFETCH_NICE : undefined);
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
        if (e === SPOOL_LOCK || e === SPOOL_POSITION || e === SPOOL_LOG) continue;
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
        if (!(await heartbeat(spool, SPOOL_LOCK))) {
          logger.info('the prefetch lock was taken away; exiting', { spool });
          lockLost = true;
          return;
        }
        lastBeat = now;
      }
      const text = await fsp.readFile(join(spool, SPOOL_POSITION), 'utf8').catch(() => null);
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
        const timer = setTimeout(r, POLL_MS);
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
    if (e === SPOOL_LOCK || e === SPOOL_LOG || (isTempName(e) && !isAbandonedTemp(e))) continue;
    await fsp.rm(join(spool, e), { force: true }).catch(() => undefined);
  }
  await releaseLock(spool, SPOOL_LOCK);
}
