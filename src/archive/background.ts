/**
 * The detached helper processes (the push-ahead pusher, the fetch prefetcher): one per state
 * directory, held by a lock file `{pid}` whose mtime is a heartbeat, started by the per-file
 * calls PostgreSQL runs, with stdio away from PostgreSQL's and stderr in a log file.
 */
import { closeSync, constants as fsc, openSync, readdirSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../log.js';
import { processAlive } from '../pid.js';
import { writeFileAtomic } from '../local/atomic-write.js';
import { readPrivate, readPrivateFile } from '../local/private.js';

/** How often a holder refreshes its lock's mtime. */
export const HEARTBEAT_MS = 1_000;
/** A lock whose heartbeat is older than this belongs to a dead process. */
const STALE_MS = 15_000;

/** The lock's content when a live process holds `dir/lock` (pid alive, heartbeat recent), else null. */
export async function lockHolder(dir: string, lock: string): Promise<Record<string, unknown> | null> {
  // Synchronous: it is on the per-call path, where a thread-pool round trip costs more.
  const file = readPrivate(join(dir, lock));
  if (file === null || Date.now() - file.st.mtimeMs > STALE_MS) return null;
  try {
    const holder = JSON.parse(file.text) as Record<string, unknown>;
    return typeof holder.pid === 'number' && processAlive(holder.pid) ? holder : null;
  } catch {
    return null;
  }
}

export async function lockHolderAlive(dir: string, lock: string): Promise<boolean> {
  return (await lockHolder(dir, lock)) !== null;
}

/**
 * Takes `dir/lock` for this process unless a live process holds it (a stale lock is broken).
 * `dir` is a private directory the caller has checked (local/private.ts). `about` is written into
 * the lock beside the pid, for lockHolder's readers. The lock is written whole and linked into
 * place (create-only): a reader never sees a lock without its pid, and two takers never both win.
 */
export async function acquireLock(dir: string, lock: string, about: Record<string, unknown> = {}): Promise<boolean> {
  const path = join(dir, lock);
  const text = JSON.stringify({ ...about, pid: process.pid, startedAt: new Date().toISOString() });
  for (let attempt = 0; attempt < 2; attempt++) {
    if ((await writeFileAtomic(path, text, { createOnly: true })) === 'written') return true;
    if (await lockHolderAlive(dir, lock)) return false;
    await fsp.rm(path, { force: true });
  }
  return false;
}

export async function lockIsOurs(dir: string, lock: string): Promise<boolean> {
  try {
    return (JSON.parse(readPrivateFile(join(dir, lock)) ?? '{}') as { pid?: number }).pid === process.pid;
  } catch {
    return false;
  }
}

/** Refreshes the heartbeat; false when the lock is no longer ours (the caller should exit). */
export async function heartbeat(dir: string, lock: string): Promise<boolean> {
  if (!(await lockIsOurs(dir, lock))) return false;
  await fsp.utimes(join(dir, lock), new Date(), new Date()).catch(() => undefined);
  return true;
}

export async function releaseLock(dir: string, lock: string): Promise<void> {
  if (await lockIsOurs(dir, lock)) await fsp.rm(join(dir, lock), { force: true }).catch(() => undefined);
}

/**
 * glibc malloc settings for the helpers (a value set in the environment wins): they allocate and free
 * buffers of a whole segment (16 MiB) and its object per file. By default each comes from a
 * fresh mmap, and touching its pages costs a page fault each: on the benchmark machine about 6 ms
 * of kernel time per segment. Kept in the heap instead, the memory is reused; the price is a
 * resident size that does not shrink below what the helper used at once (tens of MiB).
 */
const HELPER_MALLOC = {
  MALLOC_MMAP_THRESHOLD_: String(128 << 20),
  MALLOC_TRIM_THRESHOLD_: String(256 << 20),
  MALLOC_TOP_PAD_: String(64 << 20),
};

/**
 * Opens a helper's log for writing, emptied: in the private directory the caller checked, never
 * through a link planted at its name; appended to, so that several writers (a helper's threads)
 * never overwrite one another.
 */
export function openHelperLog(path: string): number {
  return openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_APPEND | fsc.O_NOFOLLOW, 0o600);
}

/**
 * Starts `walship <args>` detached (same node, same script, same environment), stdin and stdout
 * closed, stderr to `logPath`. Never fails: the caller works without it.
 */
export async function startDetached(args: string[], logPath: string, what: string): Promise<number | undefined> {
  let logFd: number | undefined;
  try {
    // child_process (with net and stream) is loaded only by the call that starts a process.
    const { spawn } = await import('node:child_process');
    logFd = openHelperLog(logPath);
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
      detached: true,
      stdio: ['ignore', 'ignore', logFd],
      env: { ...HELPER_MALLOC, ...process.env },
    });
    child.on('error', () => undefined);
    child.unref();
    logger.debug(`started the ${what}`, { pid: child.pid ?? 0 });
    return child.pid;
  } catch (err) {
    logger.debug(`cannot start the ${what}`, { error: (err as Error).message });
    return undefined;
  } finally {
    if (logFd !== undefined) closeSync(logFd);
  }
}

/**
 * Lowers this process's CPU priority to `nice` (never raises it). On Linux a nice value belongs
 * to a thread, so every thread's is set; threads started later inherit it from their creator.
 * Never fails: a helper at its ordinary priority still works.
 */
export async function lowerPriority(nice: number): Promise<void> {
  const { getPriority, setPriority } = await import('node:os');
  let threads = [0];
  try {
    threads = readdirSync('/proc/self/task').map(Number);
  } catch {
    // not Linux: the process's own priority is all there is
  }
  for (const tid of threads) {
    try {
      if (getPriority(tid) < nice) setPriority(tid, nice);
    } catch (err) {
      logger.debug('cannot lower the priority', { tid, error: (err as Error).message });
    }
  }
}
