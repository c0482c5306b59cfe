/**
 * What verify has read and found sound, kept in the repository (`verify/state.json`) so that any
 * host's next verify reads only what is new. Archived objects never change (they are created
 * once), so an object verified once stays verified; `verify --full` reads every stored byte
 * again, as it must to find damage that came later (a disk, a bucket). What an earlier verify
 * checked in depth (decompressed, every record read) under the same `checks` needs only its
 * stored bytes proven unchanged; `--deep` checks everything in depth again.
 *
 * A push that replaces a damaged object (archive/push.ts) leaves a marker under
 * RECHECK_PREFIX: the next verify reads that object again in depth, whatever the state says.
 */
import type { StorageDriver } from '../storage/driver.js';

export const STATE_KEY = 'verify/state.json';
export { RECHECK_PREFIX } from '../archive/keys.js';

/**
 * The version of the in-depth checks (checks.ts). Raise it when they learn to find something
 * new: objects checked by an older version are then checked in depth by the next `--full`.
 */
export const CHECKS_VERSION = 1;

export interface VerifyState {
  format: 1;
  /** The last run: when, whether it read everything, what it read and what it found. */
  at: string;
  full: boolean;
  checked: number;
  problems: number;
  /** Verified segments, per timeline, as [first, last] ranges of segment numbers. */
  segments: Record<string, [number, number][]>;
  /** The CHECKS_VERSION everything listed was checked in depth with (absent: before versions). */
  checks?: number;
  /** Other verified WAL files (history, .partial, .backup), by name. */
  files: string[];
  /** Verified walship backups, by id. */
  backups: string[];
}

export function emptyState(): VerifyState {
  return { format: 1, at: '', full: false, checked: 0, problems: 0, segments: {}, files: [], backups: [] };
}

/** The stored state; an unreadable or absent one is an empty one (everything is read again). */
export async function readState(storage: StorageDriver): Promise<VerifyState> {
  const buf = await storage.get(STATE_KEY);
  if (buf === null) return emptyState();
  try {
    const s = JSON.parse(buf.toString('utf8')) as VerifyState;
    return s.format === 1 && s.segments && Array.isArray(s.files) && Array.isArray(s.backups) ? s : emptyState();
  } catch {
    return emptyState();
  }
}

export async function writeState(storage: StorageDriver, s: VerifyState): Promise<void> {
  await storage.replace(STATE_KEY, Buffer.from(JSON.stringify(s) + '\n'), { contentType: 'application/json' });
}

/** Whether segment `seg` of `timeline` lies in the verified ranges. */
export function segmentVerified(s: VerifyState, timeline: number, seg: number): boolean {
  return (s.segments[timeline] ?? []).some(([a, b]) => seg >= a && seg <= b);
}
