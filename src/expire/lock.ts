/**
 * A lock in the repository, so that two hosts (or two processes) never run one command at once
 * against it: `locks/<name>.json`, created only if absent (a hard link on a filesystem,
 * If-None-Match on S3), refreshed while held, removed when done.
 *
 * Stale rule: a lock whose holder ran on this host and is gone, or whose refresh is older than
 * STALE_AFTER_MS (its holder was killed, or lost the repository), is taken over: removed, created
 * anew, and confirmed after SETTLE_MS, so that of two processes taking over one stale lock at once
 * only the one whose lock is there afterwards goes on.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { WalshipError } from '../errors.js';
import { logger } from '../log.js';
import { processAlive } from '../pid.js';
import type { StorageDriver } from '../storage/driver.js';

export const LOCK_PREFIX = 'locks/';
/** How often the holder refreshes its lock. */
export const REFRESH_MS = 30_000;
/** A lock not refreshed for this long is stale. */
export const STALE_AFTER_MS = 5 * 60_000;
const SETTLE_MS = 2_000;

interface LockDoc {
  format: 1;
  token: string;
  host: string;
  pid: number;
  command: string;
  since: string;
  refreshed: string;
}

export interface HeldLock {
  key: string;
  /** Stops refreshing and removes the lock (if it is still this one). */
  release(): Promise<void>;
  /** Set when a refresh found the lock taken by another: the holder must stop. */
  readonly lost: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readLock(storage: StorageDriver, key: string): Promise<LockDoc | null | 'unreadable'> {
  const buf = await storage.get(key);
  if (buf === null) return null;
  try {
    const d = JSON.parse(buf.toString('utf8')) as LockDoc;
    return typeof d.token === 'string' && typeof d.refreshed === 'string' ? d : 'unreadable';
  } catch {
    return 'unreadable';
  }
}

/** Why the lock `d` is stale, or null while its holder may be alive. */
export function staleReason(d: LockDoc | 'unreadable', nowMs: number): string | null {
  if (d === 'unreadable') return 'it is unreadable';
  if (d.host === hostname() && !processAlive(d.pid)) return `its process ${d.pid} on this host is gone`;
  const age = nowMs - Date.parse(d.refreshed);
  if (!(age < STALE_AFTER_MS)) return `it was last refreshed ${Math.round(age / 1000)} s ago`;
  return null;
}

export async function acquireLock(storage: StorageDriver, name: string, command: string): Promise<HeldLock> {
  const key = `${LOCK_PREFIX}${name}.json`;
  const now = new Date().toISOString();
  const doc: LockDoc = { format: 1, token: randomBytes(8).toString('hex'), host: hostname(), pid: process.pid, command, since: now, refreshed: now };
  const body = () => Buffer.from(JSON.stringify(doc) + '\n');
  const busy = (d: LockDoc) =>
    new WalshipError(
      'REPOSITORY_BUSY',
      `another ${d.command} holds ${storage.location}/${key}: pid ${d.pid} on ${d.host}, since ${d.since} (last refreshed ${d.refreshed}); it is taken over once not refreshed for ${STALE_AFTER_MS / 60_000} min`,
    );
  if ((await storage.putIfAbsent(key, body(), { contentType: 'application/json' })) === 'exists') {
    const held = await readLock(storage, key);
    if (held !== null) {
      const why = staleReason(held, Date.now());
      if (why === null) throw busy(held as LockDoc);
      // Remove it only if it is still the stale one just read.
      const again = await readLock(storage, key);
      if (again !== null && JSON.stringify(again) !== JSON.stringify(held)) throw busy(again === 'unreadable' ? doc : again);
      logger.warn(`taking over a stale lock: ${why}`, { lock: key, ...(held !== 'unreadable' && { host: held.host, pid: held.pid }) });
      await storage.remove([key]);
    }
    if ((await storage.putIfAbsent(key, body(), { contentType: 'application/json' })) === 'exists') {
      const other = await readLock(storage, key);
      throw busy(other !== null && other !== 'unreadable' ? other : doc);
    }
    await sleep(SETTLE_MS);
    const mine = await readLock(storage, key);
    if (mine === null || mine === 'unreadable' || mine.token !== doc.token) throw busy(mine !== null && mine !== 'unreadable' ? mine : doc);
  }
  let lost = false;
  let refreshing: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    refreshing = (async () => {
      const cur = await readLock(storage, key).catch(() => null);
      if (cur === null || cur === 'unreadable' || cur.token !== doc.token) {
        lost = true;
        return;
      }
      doc.refreshed = new Date().toISOString();
      await storage.replace(key, body(), { contentType: 'application/json' }).catch((err) => logger.warn('could not refresh the repository lock', { lock: key, error: (err as Error).message }));
    })();
  }, REFRESH_MS);
  timer.unref();
  return {
    key,
    get lost() {
      return lost;
    },
    async release() {
      clearInterval(timer);
      await refreshing;
      const cur = await readLock(storage, key);
      if (cur !== null && cur !== 'unreadable' && cur.token === doc.token) await storage.remove([key]);
    },
  };
}
