/**
 * The background pusher (`walship archive-push-ahead <pg_wal>`, started by archive-push, see
 * readahead.ts): keeps the `.ready` segments of one pg_wal pushed ahead of PostgreSQL's archiver.
 *
 * Oldest first (PostgreSQL's order), at most `push_readahead` stored and not yet asked for, a few
 * files in flight on a few lanes (the main thread and a worker thread per further core), stored in
 * order (push-order.ts). Per file: `<name>.pushing` while it works, then the durable record
 * `<name>`, or `<name>.failed` with the error (the call for it then pushes the file itself and
 * reports what is wrong). The pusher tries a failed file again later, a refused one (of another
 * history, say) never: that is PostgreSQL's call to make; and it pushes nothing newer than either
 * meanwhile. A file that changes while it is pushed gets no record. Records, markers and failures
 * of files no longer `.ready` are deleted. It exits when it has had no work for a while
 * (nothing in flight, and PostgreSQL has marked no file done and made none ready), when pg_wal is
 * gone, or when its lock is taken away.
 */
import { join } from 'node:path';
import { readdir, rm } from 'node:fs/promises';
import { isAbandonedTemp, writeFileAtomic } from '../local/atomic-write.js';
import type { Config } from '../config.js';
import { repoCanonical, withCatalog } from './context.js';
import { FILE_REFUSALS, WalshipError, asWalshipError } from '../errors.js';
import { logger } from '../log.js';
import { HEARTBEAT_MS, acquireLock, heartbeat, releaseLock } from './background.js';
import {
  CALLED,
  FAILED,
  PUSHER_LOCK,
  PUSHER_LOG,
  SEGMENT_READY_RE,
  readaheadStateDir,
  stateUsable,
  writeRecord,
} from './readahead.js';
import { fileState, sameFileState, statOrNull } from './file-state.js';
import type { ArchiveContext } from './context.js';
import { openLanes, type Lane } from './lanes.js';
import { PUSHING, STORED } from './push-order.js';
import { filesInFlight, pushCost } from './memory.js';

/** The pusher exits when it has had nothing to do this long. */
export const PUSHER_IDLE_MS = 10_000;
/** Most files in flight at once (fewer when memory_max holds fewer: memory.ts); one lane per core among them. */
const MAX_IN_FLIGHT = 4;
const POLL_MS = 20;
/** After a failure, the pusher leaves the file to PostgreSQL's own call for this long. */
const FAILED_RETRY_MS = 30_000;
/** A segment deferred because its predecessor is not archived is tried again after this long. */
const DEFERRED_RETRY_MS = 1_000;

/**
 * The pusher for `walDir` (a real path), until it has had nothing to do for a while; its lanes are closed when it
 * returns. In the agent (`inAgent`): its pushes run on worker threads only (the agent's thread
 * answers calls meanwhile), which write their lines to the pusher's log (`logFd`).
 */
export async function runPusher(
  cfg: Config,
  walDir: string,
  repo: string,
  makeCtx: () => Promise<ArchiveContext>,
  inAgent?: { logFd: number },
): Promise<void> {
  const stateDir = readaheadStateDir(cfg.catalog);
  if (!stateUsable(stateDir, true)) return;
  if (!(await acquireLock(stateDir, PUSHER_LOCK, { walDir }))) {
    logger.debug('another pusher holds the state directory', { stateDir });
    return;
  }
  let ctxPromise: Promise<ArchiveContext> | undefined;
  const getCtx = () => (ctxPromise ??= withCatalog(makeCtx()));
  let lanes: { lanes: Lane[]; perLane: number } | undefined;
  let maxInFlight: number | undefined;
  const load = new Map<Lane, number>();
  const inflight = new Set<string>();
  const retryAt = new Map<string, number>();
  /** Files refused (FILE_REFUSALS): nothing newer is pushed ahead while one is .ready. */
  const refused = new Set<string>();
  let pushed = 0;
  let lastWork = Date.now();
  let lastReady = new Set<string>();
  let lastBeat = 0;
  let wake: (() => void) | undefined;

  /** Pushes `name`, whose `.pushing` marker is written. */
  const pushOne = async (lane: Lane, name: string): Promise<void> => {
    const path = join(walDir, name);
    const base = join(stateDir, name);
    try {
      const before = await statOrNull(path);
      // In order (push-order.ts): stored only once this pusher has stored its predecessor.
      const outcome = await lane.run({ op: 'push', path, inOrder: stateDir });
      if (outcome.ok && outcome.result.outcome === 'deferred') {
        logger.debug('the segment before it is not archived; trying again later', { file: name });
        retryAt.set(name, Date.now() + DEFERRED_RETRY_MS);
        return;
      }
      if (!outcome.ok) {
        const we = asWalshipError(outcome.error);
        logger.warn('background push failed; PostgreSQL\'s call will push this file itself', { file: name, error: we.message, code: we.code });
        retryAt.set(name, Date.now() + FAILED_RETRY_MS);
        if (FILE_REFUSALS.has(we.code)) refused.add(name);
        await writeFileAtomic(base + FAILED, `${we.code}: ${we.message}\n`);
        return;
      }
      const after = await statOrNull(path);
      if (!before || !after || !sameFileState(fileState(before), after)) {
        logger.info('file changed while it was pushed; leaving it to PostgreSQL\'s call', { file: name });
        return;
      }
      await writeRecord(stateDir, {
        name,
        repo,
        dir: walDir,
        ...fileState(after),
        sha256: outcome.result.sha256,
        pushedAt: new Date().toISOString(),
      });
      pushed++;
    } catch (err) {
      logger.warn('cannot record a background push; PostgreSQL\'s call will push the file again', { file: name, error: (err as Error).message });
      retryAt.set(name, Date.now() + FAILED_RETRY_MS);
    } finally {
      await rm(base + PUSHING, { force: true }).catch(() => undefined);
      inflight.delete(name);
      load.set(lane, (load.get(lane) ?? 1) - 1);
      lastWork = Date.now();
      wake?.();
    }
  };

  try {
    // Markers left by a pusher that died.
    for (const e of await readdir(stateDir)) {
      if (e.endsWith(PUSHING) || isAbandonedTemp(e)) await rm(join(stateDir, e), { force: true }).catch(() => undefined);
    }
    logger.info('background pusher started', { walDir, pid: process.pid });
    for (;;) {
      const now = Date.now();
      if (now - lastBeat >= HEARTBEAT_MS) {
        if (!(await heartbeat(stateDir, PUSHER_LOCK))) {
          logger.info('the pusher lock was taken away; exiting');
          return;
        }
        lastBeat = now;
      }
      let status: string[];
      try {
        status = await readdir(join(walDir, 'archive_status'));
      } catch {
        logger.info('pg_wal is gone; exiting', { walDir });
        break;
      }
      const ready = new Set<string>();
      for (const e of status) {
        const m = SEGMENT_READY_RE.exec(e);
        if (m) ready.add(m[1]!);
      }
      // Records and failures of files PostgreSQL is done with; what is stored ahead.
      const recorded = new Set<string>();
      const failed = new Set<string>();
      let state: string[];
      try {
        state = await readdir(stateDir);
      } catch {
        logger.info('the state directory is gone; exiting', { stateDir });
        break;
      }
      for (const e of state) {
        if (e.startsWith('.') || e === PUSHER_LOCK || e === PUSHER_LOG || e === CALLED || e.endsWith(PUSHING)) continue;
        const isFailed = e.endsWith(FAILED);
        const isStored = e.endsWith(STORED);
        const n = isFailed ? e.slice(0, -FAILED.length) : isStored ? e.slice(0, -STORED.length) : e;
        if (!ready.has(n)) await rm(join(stateDir, e), { force: true }).catch(() => undefined);
        else if (!isStored) (isFailed ? failed : recorded).add(n);
      }
      for (const n of [...retryAt.keys()]) if (!ready.has(n)) retryAt.delete(n);

      // Nothing newer than a refused file (PostgreSQL does not get past it, and what lies beyond a
      // file of another history must not be stored, archive/continuity.ts), nor than one waiting
      // to be tried again: segments are stored in order (push-order.ts).
      for (const n of [...refused]) if (!ready.has(n)) refused.delete(n);
      const stop = [...refused, ...[...retryAt].filter(([, at]) => at > now).map(([n]) => n)].sort()[0];
      const todo = [...ready].filter((n) => !recorded.has(n) && !inflight.has(n) && (stop === undefined || n < stop)).sort();
      // Work is a push in flight, or PostgreSQL moving on (a file marked done, a new one ready)
      // while it calls walship. Files that stay .ready while nothing can be pushed (all within
      // push_readahead are stored, pushes fail) are no work, nor files another archive_command
      // archives: the pusher exits, and a later call starts it again. It pushes ahead only while
      // calls come (each touches CALLED).
      const asked = now - Number((await statOrNull(join(stateDir, CALLED)))?.mtimeMs ?? 0n) < PUSHER_IDLE_MS;
      const moved = ready.size !== lastReady.size || [...ready].some((n) => !lastReady.has(n));
      lastReady = ready;
      if (inflight.size > 0 || (moved && asked)) lastWork = now;
      else if (now - lastWork > PUSHER_IDLE_MS) break;

      let ahead = recorded.size + inflight.size;
      for (const n of asked ? todo : []) {
        // Older than everything recorded: PostgreSQL asks for it next (or now), whatever the cap.
        if (ahead >= cfg.push_readahead && !(n === todo[0] && [...recorded].every((r) => n < r))) break;
        // As many files at once as memory_max holds (memory.ts), sized by the first one's size.
        maxInFlight ??= filesInFlight(cfg.memory_max, pushCost(Number((await statOrNull(join(walDir, n)))?.size ?? 0n), repo.startsWith('s3://')), Math.max(1, Math.min(cfg.push_readahead, MAX_IN_FLIGHT)));
        if (inflight.size >= maxInFlight) break;
        lanes ??= await openLanes(cfg, 'archive-push-ahead', maxInFlight, getCtx, makeCtx, !inAgent, inAgent?.logFd);
        const lane = lanes.lanes.find((l) => (load.get(l) ?? 0) < lanes!.perLane);
        if (!lane) break;
        if (failed.has(n)) await rm(join(stateDir, n + FAILED), { force: true }).catch(() => undefined);
        load.set(lane, (load.get(lane) ?? 0) + 1);
        inflight.add(n);
        ahead++;
        // The marker is there before the next segment's push starts: that one waits on it (push-order.ts).
        try {
          await writeFileAtomic(join(stateDir, n + PUSHING), '');
        } catch (err) {
          logger.warn('cannot mark a background push; leaving the file to PostgreSQL\'s call', { file: n, error: (err as Error).message });
          inflight.delete(n);
          load.set(lane, (load.get(lane) ?? 1) - 1);
          retryAt.set(n, Date.now() + FAILED_RETRY_MS);
          break;
        }
        void pushOne(lane, n);
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, POLL_MS);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
      wake = undefined;
    }
    logger.info('nothing to push for a while; pusher exits', { pushed, ready: lastReady.size });
  } finally {
    while (inflight.size > 0) await new Promise((r) => setTimeout(r, POLL_MS));
    if (lanes) await Promise.all(lanes.lanes.map((l) => l.close()));
    if (ctxPromise) (await ctxPromise.catch(() => null))?.catalog?.close();
    await releaseLock(stateDir, PUSHER_LOCK);
  }
}

/** `walship archive-push-ahead <pg_wal>`: checks its argument, then runs the pusher. */
export async function runPusherCommand(cfg: Config, walDir: string, makeCtx: () => Promise<ArchiveContext>): Promise<void> {
  if (!walDir.startsWith('/')) throw new WalshipError('USAGE', 'archive-push-ahead needs the absolute path of pg_wal');
  await runPusher(cfg, walDir, repoCanonical(cfg), makeCtx);
}
