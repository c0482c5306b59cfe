/**
 * The drill's record in the repository, `drills/<UTC time>-<random>.json`, created once: every host
 * sees when the backups were last proven to restore, and how long that took (`walship status`).
 */
import { randomBytes } from 'node:crypto';
import type { StorageDriver } from '../storage/driver.js';
import type { Check, Verdict } from './judge.js';
import type { TableCount } from './inspect.js';

export const DRILL_PREFIX = 'drills/';

export interface DrillRecord {
  format: 1;
  startedAt: string;
  finishedAt: string;
  host: string;
  backup: { id: string; label: string; stopTime: string };
  target: { type: string; value: string | number | null; timeline: number; random: boolean };
  /** What the plan promised (plan.ts, Plan.replayed). */
  promised: { timeline: number; lastXact: { xid: number; time: string; lsn: string } | null; exact: boolean; stop: string };
  reached: { timeline: number; parentTimeline: number | null; lastXactTime: string | null; replayLsn: string } | null;
  /** Seconds: restore (download, check, unpack), replay (server start to the end of recovery), the checks, all. */
  durations: { restore: number; replay: number | null; checks: number | null; total: number };
  /** Bytes of WAL replayed, from the backup's start to the end of recovery. */
  walReplayedBytes: number | null;
  restoredBytes: number;
  amcheck: 'passed' | 'failed' | 'not installed' | 'not run' | 'not supported';
  tables: TableCount[];
  checks: Check[];
  verdict: Verdict;
  /** Why a failed drill failed, in one line. */
  failure: string | null;
}

export function drillKey(at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace(/\.(\d{3})Z$/, '$1Z');
  return `${DRILL_PREFIX}${stamp}-${randomBytes(4).toString('hex')}.json`;
}

export async function storeDrill(storage: StorageDriver, key: string, rec: DrillRecord): Promise<void> {
  await storage.putIfAbsent(key, Buffer.from(JSON.stringify(rec, null, 2) + '\n'), { contentType: 'application/json' });
}

/** The newest drill record (keys sort by time), or null; an unreadable one is skipped for the one before it. */
export async function latestDrill(storage: StorageDriver): Promise<DrillRecord | null> {
  const keys: string[] = [];
  for await (const o of storage.list(DRILL_PREFIX)) if (o.key.endsWith('.json')) keys.push(o.key);
  for (let i = keys.length - 1; i >= 0; i--) {
    const buf = await storage.get(keys[i]!);
    if (buf === null) continue;
    try {
      const r = JSON.parse(buf.toString('utf8')) as DrillRecord;
      if (r.format === 1 && typeof r.finishedAt === 'string' && (r.verdict === 'passed' || r.verdict === 'failed')) return r;
    } catch {
      /* damaged: the one before */
    }
  }
  return null;
}
