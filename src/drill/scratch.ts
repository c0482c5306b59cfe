/**
 * The drill's scratch directory: `walship-drill-XXXXXX`, private (0700), made in the parent the
 * operator names (--workdir) or the system's temporary directory. A marker file (drill.json)
 * says which process owns it; a drill killed before it could clean up leaves the directory and
 * maybe its server, and the next drill on this host with the same parent stops that server and
 * removes the directory, once its owner is gone. A directory kept with --keep is left alone.
 */
import { existsSync, promises as fsp, lstatSync, mkdtempSync, readdirSync, statfsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { WalshipError, describeSystemError } from '../errors.js';
import { writeFileAtomic } from '../local/atomic-write.js';
import { privateDir, readPrivateFile, trustProblem } from '../local/private.js';
import { processAlive, stopProcesses } from '../pid.js';
import { stopServerIn } from './server.js';
import { lockHolder } from '../archive/background.js';

export const SCRATCH_PREFIX = 'walship-drill-';
const MARKER = 'drill.json';

interface Marker {
  format: 1;
  pid: number;
  host: string;
  startedAt: string;
  keep: boolean;
}

/** A new private scratch directory under `parent`, marked as this process's. */
export async function createScratch(parent: string): Promise<string> {
  let dir: string;
  try {
    dir = mkdtempSync(join(parent, SCRATCH_PREFIX));
  } catch (err) {
    throw new WalshipError('USAGE', `cannot make a scratch directory in ${parent}: ${describeSystemError(err)} (choose another with --workdir)`);
  }
  const trust = privateDir(dir);
  if (trust.state !== 'ok') {
    await fsp.rm(dir, { recursive: true, force: true });
    throw new WalshipError('USAGE', `the scratch directory ${dir} is not private (${'reason' in trust ? trust.reason : trust.state}): choose another parent with --workdir`);
  }
  await writeMarker(dir, false);
  return dir;
}

async function writeMarker(dir: string, keep: boolean): Promise<void> {
  const m: Marker = { format: 1, pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), keep };
  await writeFileAtomic(join(dir, MARKER), JSON.stringify(m) + '\n');
}

/** Marks the directory as kept (--keep): no later drill removes it. */
export async function markKept(dir: string): Promise<void> {
  await writeMarker(dir, true);
}

/**
 * Stops a server still running in the scratch directory, and the prefetcher and the agent its
 * restore_command started (beside the data directory: walship-spool-*, walship-agent.data), then
 * removes it.
 */
export async function removeScratch(dir: string): Promise<void> {
  // A call that was under way when the server stopped (a restore_command in node, an agent still
  // starting) can make its directories again after they are removed: remove until they stay gone.
  for (let round = 0; round < 5; round++) {
    await stopServerIn(join(dir, 'data'));
    const helpers = readdirSafe(dir).flatMap((n) => (n.startsWith('walship-spool-') ? [[n, 'prefetch.lock']] : n === 'walship-agent.data' ? [[n, 'agent.lock']] : []));
    const pids: number[] = [];
    for (const [n, lock] of helpers) {
      const pid = Number((await lockHolder(join(dir, n!), lock!))?.pid);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) pids.push(pid);
    }
    // A helper finishes the call in hand before it exits, and that call may write into the data
    // directory (a fetch delivering into pg_wal): wait for each to be gone before removing.
    await stopProcesses(pids, 'SIGTERM');
    await fsp.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    await new Promise((r) => setTimeout(r, 500));
    if (!existsSync(dir)) return;
  }
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Removes what killed drills left under `parent`: scratch directories of this user's, on this
 * host, whose owner process is gone and that were not kept. Returns the directories removed.
 */
export async function cleanLeftovers(parent: string): Promise<string[]> {
  const names = readdirSafe(parent).filter((n) => n.startsWith(SCRATCH_PREFIX));
  const removed: string[] = [];
  for (const name of names) {
    const dir = join(parent, name);
    let st;
    try {
      st = lstatSync(dir);
    } catch {
      continue;
    }
    if (trustProblem(st, 'directory') !== null) continue; // another user's, or not a directory
    const text = readPrivateFile(join(dir, MARKER));
    let m: Marker | null = null;
    try {
      m = text === null ? null : (JSON.parse(text) as Marker);
    } catch {
      m = null;
    }
    // No marker: killed while the directory was being made, or not walship's; left alone unless it is an hour old.
    if (m === null) {
      if (Date.now() - st.mtimeMs < 3_600_000) continue;
    } else if (m.keep || m.host !== hostname() || m.pid === process.pid || processAlive(m.pid)) {
      continue;
    }
    await removeScratch(dir);
    removed.push(dir);
  }
  return removed;
}

/** Bytes available to this user on the filesystem holding `dir`. */
export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}
