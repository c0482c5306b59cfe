/**
 * `walship plan`: which base backup, which WAL and which recovery settings reach a target, or
 * why it cannot be reached. Pure: the input model in, a plan or a refusal out. Reaching the
 * target on a timeline is reach.ts's; this file chooses the timeline and writes the settings.
 *
 * Rules, as PostgreSQL applies them (docs/wal-format.md, "How recovery uses
 * targets"); replay starts at the backup's START WAL LOCATION and every rule is checked from
 * there, before consistency too, where a stop is FATAL:
 * - time: compared only with transaction-end records (COMMIT/ABORT[_PREPARED]) in WAL order;
 *   inclusive stops before the first with time > target, exclusive before the first >= target.
 *   So a time target needs such a record after the backup's consistency point, in WAL that is
 *   archived without a gap, and no such record before the consistency point.
 * - name: stops after the first restore point of that name.
 * - lsn: stops after (inclusive) or before (exclusive) the first record starting at or past it.
 * - xid: stops after/before the first commit or abort of that transaction.
 * - immediate: stops at the backup's consistency point; latest: replays all archived WAL.
 * The backup chosen is the newest whose consistency point is before the target.
 */
import { ArchiveView } from './archive-view.js';
import { lineageOf } from './lineage.js';
import { type PlannerInput } from './input.js';
import { backupOut, type BackupOut, type SegmentRangeOut } from './ranges.js';
import { formatIso, formatPgTimestamp } from '../time.js';
import { formatLsn } from '../wal/names.js';
import { Evaluator, describeTarget, targetArgs, type Alternative, type Miss, type Reach, type RefusalCode, type Target } from './reach.js';

export type { Alternative, RefusalCode, Target } from './reach.js';

export interface PlanOptions {
  /** The restore_command line the restored server will run (walship archive-fetch %f %p ...). */
  restoreCommand: string;
  /** recovery_target_timeline; default: the newest timeline on which the target is reachable. */
  timeline?: number;
  /** recovery_target_inclusive (default true). */
  inclusive?: boolean;
}

export interface TargetOut {
  type: Target['type'];
  /** ISO time, restore point name, LSN text, xid; null for immediate/latest. */
  value: string | number | null;
  inclusive: boolean;
  timeline: number | null;
}

export interface Plan {
  reachable: true;
  target: TargetOut;
  timeline: number;
  backup: BackupOut;
  wal: { from: string; to: string; segments: SegmentRangeOut[]; historyFiles: string[] };
  /** Where recovery stops: the LSN, and the time and transaction of the record it stops at, when it is one. */
  stop: { lsn: string; time: string | null; xid: number | null; description: string };
  /**
   * The last transaction end (commit or abort) recovery replays: what the recovered server reports
   * as pg_last_xact_replay_timestamp(). null: it replays none. `exact` false: recovery may replay
   * a later one too (target latest replays WAL archived after this plan; an inclusive LSN target
   * replays the first record at or past the LSN, which may be a transaction's end).
   */
  replayed: { lastXact: { xid: number; time: string; lsn: string } | null; exact: boolean };
  /** Setting name → value as written in postgresql.conf (quoted where PostgreSQL wants it). */
  settings: Record<string, string>;
  /** The same as postgresql.conf lines, in order. */
  conf: string[];
  notes: string[];
}

export interface Refusal {
  reachable: false;
  target: TargetOut;
  code: RefusalCode;
  reason: string;
  alternatives: Alternative[];
}

export type PlanResult = Plan | Refusal;

function targetOut(t: Target, inclusive: boolean, timeline: number | null): TargetOut {
  const value = t.type === 'time' ? formatIso(t.time) : t.type === 'name' ? t.name : t.type === 'lsn' ? formatLsn(t.lsn) : t.type === 'xid' ? t.xid : null;
  const hasInclusive = t.type === 'time' || t.type === 'lsn' || t.type === 'xid';
  return { type: t.type, value, inclusive: hasInclusive ? inclusive : true, timeline };
}


function confLine(name: string, value: string): string {
  return `${name} = ${value}`;
}

export function quoteConf(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function buildPlan(view: ArchiveView, t: Target, reach: Reach, opts: PlanOptions, inclusive: boolean): Plan {
  const b = reach.backup.backup;
  const lin = reach.lin;
  const fromSeg = view.segOf(b.startLsn);
  const toSeg = Math.max(fromSeg, view.segOf(Math.max(reach.walEnd - 1, b.startLsn)));
  const settings: Record<string, string> = { restore_command: quoteConf(opts.restoreCommand) };
  switch (t.type) {
    case 'time':
      settings.recovery_target_time = quoteConf(formatPgTimestamp(t.time));
      break;
    case 'name':
      settings.recovery_target_name = quoteConf(t.name);
      break;
    case 'lsn':
      settings.recovery_target_lsn = quoteConf(formatLsn(t.lsn));
      break;
    case 'xid':
      settings.recovery_target_xid = quoteConf(String(t.xid));
      break;
    case 'immediate':
      settings.recovery_target = quoteConf('immediate');
      break;
    case 'latest':
      Object.assign(settings, reach.override ?? {});
      break;
  }
  if (!inclusive && (t.type === 'time' || t.type === 'lsn' || t.type === 'xid')) settings.recovery_target_inclusive = 'off';
  settings.recovery_target_timeline = quoteConf(String(reach.timeline));
  settings.recovery_target_action = quoteConf('promote');
  return {
    reachable: true,
    target: targetOut(t, inclusive, reach.timeline),
    timeline: reach.timeline,
    backup: backupOut(b, reach.backup),
    wal: {
      from: formatLsn(b.startLsn),
      to: formatLsn(reach.walEnd),
      segments: lin.segmentRanges(fromSeg, toSeg),
      historyFiles: lin.historyFiles(),
    },
    stop: {
      lsn: formatLsn(reach.stop.lsn),
      time: reach.stop.time === null ? null : formatIso(reach.stop.time),
      xid: reach.stop.xid ?? null,
      description: reach.stop.description,
    },
    replayed: lastReplayed(t, reach, inclusive),
    settings,
    conf: Object.entries(settings).map(([k, v]) => confLine(k, v)),
    notes: reach.notes,
  };
}

/** Plan.replayed: transaction ends from the backup's start up to where the target stops replay (the rules in the module comment). */
function lastReplayed(t: Target, reach: Reach, inclusive: boolean): Plan['replayed'] {
  const stop = reach.stop.lsn;
  // Records starting before this LSN are replayed.
  let before = stop;
  let exact = true;
  if (t.type === 'xid' && inclusive) before = stop + 1;
  if (t.type === 'lsn' && inclusive) {
    before = stop + 1;
    exact = false;
  }
  if (t.type === 'latest') {
    before = reach.walEnd;
    exact = false;
  }
  const x = reach.lin.lastXactBetween(reach.backup.backup.startLsn, before);
  return { lastXact: x ? { xid: x.xid, time: formatIso(x.time), lsn: formatLsn(x.lsn) } : null, exact };
}

function refuse(t: Target, inclusive: boolean, timeline: number | null, m: Miss): Refusal {
  const seen = new Set<string>();
  const alternatives = m.alternatives.filter((a) => !seen.has(a.args) && seen.add(a.args));
  return { reachable: false, target: targetOut(t, inclusive, timeline), code: m.code, reason: m.reason, alternatives };
}

function isReach(x: Reach | Miss): x is Reach {
  return 'backup' in x;
}

/** Plans recovery to `target`, or explains why the archive cannot reach it. */
export function planRecovery(input: PlannerInput, target: Target, opts: PlanOptions): PlanResult {
  const view = new ArchiveView(input);
  const inclusive = opts.inclusive ?? true;
  const ids = view.timelineIds();
  const evalOn = (tl: number) => new Evaluator(view, lineageOf(view, tl), target, inclusive).run();

  if (ids.length === 0) {
    return refuse(target, inclusive, opts.timeline ?? null, { code: 'no-backup', reason: 'nothing is archived yet', alternatives: [] });
  }
  if (opts.timeline !== undefined) {
    if (!ids.includes(opts.timeline)) {
      return refuse(target, inclusive, opts.timeline, {
        code: 'unknown-timeline',
        reason: `timeline ${opts.timeline} is not in the archive (archived timelines: ${ids.join(', ')})`,
        alternatives: ids.map((id) => ({ description: `timeline ${id}`, args: `${targetArgs(target)} --target-timeline ${id}` })),
      });
    }
    const r = evalOn(opts.timeline);
    if (isReach(r)) return buildPlan(view, target, r, opts, inclusive);
    const others = ids.filter((id) => id !== opts.timeline).map((id) => [id, evalOn(id)] as const).filter(([, x]) => isReach(x));
    if (others.length > 0) {
      const tls = others.map(([id]) => id).reverse();
      return refuse(target, inclusive, opts.timeline, {
        code: 'not-on-timeline',
        reason: `timeline ${opts.timeline} does not contain ${describeTarget(target)} (${r.reason}); timeline ${tls.join(', ')} ${tls.length > 1 ? 'do' : 'does'}`,
        alternatives: [...tls.map((id) => ({ description: `the same target on timeline ${id}`, args: `${targetArgs(target)} --target-timeline ${id}` })), ...r.alternatives],
      });
    }
    return refuse(target, inclusive, opts.timeline, r);
  }

  // No timeline given: the newest timeline that reaches the target (PostgreSQL's default is
  // 'latest'); the plan names it explicitly so a timeline archived later changes nothing.
  const results = [...ids].reverse().map((id) => [id, evalOn(id)] as const);
  let hit = results.find(([, r]) => isReach(r));
  if (target.type === 'immediate') {
    // The newest backup of any timeline, recovered along its own timeline.
    const score = ([id, r]: (typeof results)[number]) => (isReach(r) ? r.backup.backup.stopLsn * 2 + (r.backup.backup.stopTimeline === id ? 1 : 0) : -1);
    hit = [...results].sort((a, b) => score(b) - score(a)).find(([, r]) => isReach(r));
  }
  if (hit) {
    const reach = hit[1] as Reach;
    const plan = buildPlan(view, target, reach, opts, inclusive);
    const stopTl = reach.lin.timelineAt(Math.max(reach.stop.lsn - 1, 0));
    const diverging = results
      .filter(([id, r]) => id !== hit[0] && isReach(r) && (r as Reach).lin.timelineAt(Math.max((r as Reach).stop.lsn - 1, 0)) !== stopTl)
      .map(([id]) => id);
    if (diverging.length > 0 && target.type !== 'immediate') {
      plan.notes.push(`timeline ${diverging.join(', ')} also reach${diverging.length > 1 ? '' : 'es'} this target with a different history: add --target-timeline to choose`);
    }
    return plan;
  }
  // Unreachable everywhere: report the newest timeline that has a usable backup, or the newest.
  if (target.type === 'name' && !input.restorePoints.some((r) => r.name === target.name)) {
    const known = [...new Set([...input.restorePoints].sort((a, b) => a.time - b.time).map((r) => r.name))];
    return refuse(target, inclusive, null, {
      code: 'unknown-name',
      reason: `no archived restore point is named ${JSON.stringify(target.name)}${known.length ? ` (archived: ${known.slice(-10).map((n) => JSON.stringify(n)).join(', ')})` : ' (none is archived)'}`,
      alternatives: known.slice(-5).map((n) => ({ description: `restore point ${JSON.stringify(n)}`, args: `--target-name ${JSON.stringify(n)}` })),
    });
  }
  if (target.type === 'xid' && input.xacts.withXid(target.xid).length === 0) {
    return refuse(target, inclusive, null, {
      code: 'unknown-xid',
      reason: `no commit or abort of transaction ${target.xid} is archived (it may still be running, or its WAL is not archived yet)`,
      alternatives: [],
    });
  }
  const withBackup = results.find(([id]) => lineageOf(view, id).usable.length > 0);
  const [tl, miss] = withBackup ?? results[0]!;
  return refuse(target, inclusive, tl, miss as Miss);
}
