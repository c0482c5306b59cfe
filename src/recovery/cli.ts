/**
 * `walship ranges` and `walship plan`: option parsing and output around the pure planner. They
 * answer from the local catalog, which the command line has brought up to date with the
 * repository first (sync/sync.ts), or say how stale it is when it could not.
 */
import { resolve } from 'node:path';
import { WalshipError } from '../errors.js';
import { Catalog } from '../catalog/catalog.js';
import { loadPlannerInput } from './catalog-input.js';
import { parseLsn } from '../wal/names.js';
import type { Staleness } from '../sync/sync.js';
import { computeRanges, renderRanges } from './ranges.js';
import { planRecovery, refusalLine, renderPlan, type Target } from './plan.js';
import { msToMicros, parseTargetTime } from '../time.js';

type Flags = Record<string, string | boolean | undefined>;

/** How stale the catalog is when it could not be brought up to date, or null. */
type Stale = Staleness | null;

export function runRanges(ctx: { catalogPath: string; repoUrl: string }, flags: Flags, stale: Stale = null, nowMs = Date.now()): string {
  return Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) => {
    const report = computeRanges(loadPlannerInput(cat), msToMicros(nowMs));
    return flags.json ? JSON.stringify(stale ? { ...report, stale } : report, null, 2) + '\n' : renderRanges(report);
  });
}

function usage(msg: string): WalshipError {
  return new WalshipError('USAGE', `${msg} (see walship plan --help)`);
}

/** The one target the flags name; USAGE error for none, several or a malformed one. */
export function targetFromFlags(flags: Flags): Target {
  const given: Target[] = [];
  if (typeof flags.targetTime === 'string') {
    const r = parseTargetTime(flags.targetTime);
    if ('error' in r) throw usage(`--target-time: ${r.error}`);
    given.push({ type: 'time', time: r.micros });
  }
  if (typeof flags.targetName === 'string') {
    if (flags.targetName === '' || Buffer.byteLength(flags.targetName) > 63) throw usage('--target-name must be 1 to 63 bytes, as PostgreSQL restore point names are');
    given.push({ type: 'name', name: flags.targetName });
  }
  if (typeof flags.targetLsn === 'string') {
    const lsn = parseLsn(flags.targetLsn);
    if (lsn === null) throw usage(`--target-lsn: "${flags.targetLsn}" is not an LSN (write it as PostgreSQL does, e.g. 0/3000028)`);
    given.push({ type: 'lsn', lsn });
  }
  if (typeof flags.targetXid === 'string') {
    if (!/^\d+$/.test(flags.targetXid) || Number(flags.targetXid) < 3 || Number(flags.targetXid) > 0xffffffff) {
      throw usage(`--target-xid: "${flags.targetXid}" is not a transaction id (a whole number from 3 to 4294967295)`);
    }
    given.push({ type: 'xid', xid: Number(flags.targetXid) });
  }
  if (typeof flags.target === 'string') {
    if (flags.target !== 'immediate' && flags.target !== 'latest') throw usage(`--target must be immediate or latest, not "${flags.target}"`);
    given.push({ type: flags.target });
  }
  if (given.length === 0) throw usage('give a target: --target-time, --target-name, --target-lsn, --target-xid or --target immediate|latest');
  if (given.length > 1) throw usage('give only one target (PostgreSQL accepts a single recovery_target_* setting)');
  const t = given[0]!;
  if (flags.exclusive && (t.type === 'name' || t.type === 'immediate' || t.type === 'latest')) {
    throw usage(`--exclusive applies to time, LSN and xid targets only, not to --target${t.type === 'name' ? '-name' : ` ${t.type}`}`);
  }
  return t;
}

/** --target-timeline, when given; USAGE error for anything but a timeline number. */
export function timelineFromFlags(flags: Flags): number | undefined {
  if (typeof flags.targetTimeline !== 'string') return undefined;
  if (!/^\d+$/.test(flags.targetTimeline) || Number(flags.targetTimeline) < 1) throw usage(`--target-timeline must be a timeline number, not "${flags.targetTimeline}"`);
  return Number(flags.targetTimeline);
}

/** A word for a shell command line (PostgreSQL runs restore_command through /bin/sh). */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** walship archive-fetch %f %p, pointed at this repository (and config file, when one was given: an absolute path, as the server runs it in the data directory). */
export function defaultRestoreCommand(repoUrl: string, configPath?: string): string {
  const parts = ['walship', 'archive-fetch', '%f', '%p', '--repo', shellQuote(repoUrl)];
  if (configPath) parts.push('--config', shellQuote(configPath));
  return parts.join(' ');
}

/** Prints the plan (stdout); an unreachable target throws TARGET_UNREACHABLE after printing the refusal JSON with --json. */
export function runPlan(ctx: { catalogPath: string; repoUrl: string }, flags: Flags, write: (s: string) => void, stale: Stale = null): void {
  const target = targetFromFlags(flags);
  const timeline = timelineFromFlags(flags);
  const restoreCommand =
    typeof flags.restoreCommand === 'string' ? flags.restoreCommand : defaultRestoreCommand(ctx.repoUrl, typeof flags.config === 'string' ? resolve(flags.config) : undefined);
  const result = Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) =>
    planRecovery(loadPlannerInput(cat), target, { restoreCommand, timeline, inclusive: !flags.exclusive }),
  );
  const json = () => JSON.stringify(stale ? { ...result, stale } : result, null, 2) + '\n';
  if (!result.reachable) {
    if (flags.json) write(json());
    throw new WalshipError('TARGET_UNREACHABLE', refusalLine(result));
  }
  write(flags.json ? json() : renderPlan(result));
}
