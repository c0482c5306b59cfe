/**
 * Reaching a target on one timeline, as PostgreSQL recovery would (the rules are in plan.ts's
 * comment): the backup, where replay stops and why, or why the archive cannot get there, with
 * the nearest targets it can reach. Pure.
 */
import type { ArchiveView } from './archive-view.js';
import { allUnscanned, type Lineage, type UsableBackup } from './lineage.js';
import { type RestorePointRecord, type XactRecord } from './input.js';
import { windowsOf } from './ranges.js';
import { formatIso } from '../time.js';
import { formatLsn } from '../wal/names.js';

export type Target =
  | { type: 'time'; time: number }
  | { type: 'name'; name: string }
  | { type: 'lsn'; lsn: number }
  | { type: 'xid'; xid: number }
  | { type: 'immediate' }
  | { type: 'latest' };

export type RefusalCode =
  | 'before-earliest'
  | 'after-latest'
  | 'in-gap'
  | 'not-on-timeline'
  | 'unknown-name'
  | 'unknown-xid'
  | 'unknown-timeline'
  | 'no-backup'
  | 'unscanned';

export interface Alternative {
  description: string;
  /** `walship plan` options that reach it. */
  args: string;
}

/** A successful evaluation on one timeline, before it is turned into settings. */
export interface Reach {
  timeline: number;
  lin: Lineage;
  backup: UsableBackup;
  /** WAL is read up to (not including) this LSN. */
  walEnd: number;
  stop: { lsn: number; time: number | null; xid?: number; description: string };
  notes: string[];
  /** Settings forced by the plan itself (e.g. a pinned end LSN for `latest`). */
  override?: Record<string, string>;
}

export interface Miss {
  code: RefusalCode;
  reason: string;
  alternatives: Alternative[];
}

export function describeTarget(t: Target): string {
  switch (t.type) {
    case 'time':
      return formatIso(t.time);
    case 'name':
      return `restore point "${t.name}"`;
    case 'lsn':
      return `LSN ${formatLsn(t.lsn)}`;
    case 'xid':
      return `transaction ${t.xid}`;
    case 'immediate':
      return 'the consistency point of the newest backup';
    case 'latest':
      return 'the end of the archive';
  }
}

export function targetArgs(t: Target): string {
  switch (t.type) {
    case 'time':
      return `--target-time ${formatIso(t.time)}`;
    case 'name':
      return `--target-name ${JSON.stringify(t.name)}`;
    case 'lsn':
      return `--target-lsn ${formatLsn(t.lsn)}`;
    case 'xid':
      return `--target-xid ${t.xid}`;
    default:
      return `--target ${t.type}`;
  }
}

function label(u: UsableBackup): string {
  return u.backup.label || u.backup.name;
}

function describeXact(r: XactRecord): string {
  const what = r.kind === 'commit' ? 'commit' : r.kind === 'abort' ? 'abort' : r.kind === 'commit_prepared' ? 'COMMIT PREPARED' : 'ROLLBACK PREPARED';
  return `the ${what} of transaction ${r.xid} at ${formatLsn(r.lsn)} (${formatIso(r.time)})`;
}

const newestFirst = (a: UsableBackup, b: UsableBackup) => b.backup.stopLsn - a.backup.stopLsn;

export class Evaluator {
  constructor(
    readonly view: ArchiveView,
    readonly lin: Lineage,
    readonly target: Target,
    readonly inclusive: boolean,
  ) {}

  get tl(): number {
    return this.lin.timeline;
  }

  private tlArg(): string {
    return ` --target-timeline ${this.tl}`;
  }

  private noBackup(): Miss {
    const un = this.lin.unusable[this.lin.unusable.length - 1];
    return {
      code: 'no-backup',
      reason: un
        ? `no base backup on timeline ${this.tl} can be used: backup ${un.backup.label || un.backup.name}: ${un.reason}`
        : `no base backup of timeline ${this.tl}'s history is catalogued: take one (pg_basebackup with WAL archiving to walship)`,
      alternatives: [],
    };
  }

  /** Earliest and latest of the timeline's windows, as alternatives for a refused target. */
  private windowAlternatives(where: 'earliest' | 'latest' | 'both'): Alternative[] {
    const ws = windowsOf(this.view, this.lin);
    const alts: Alternative[] = [];
    const first = ws[0];
    const last = ws[ws.length - 1];
    if (first && where !== 'latest') {
      if (first.out.timeTargets && first.earliestInTime) {
        alts.push({ description: `the earliest time reachable (backup ${label(first.earliestInTime)} is consistent then)`, args: `--target-time ${first.out.timeTargets.from}${this.tlArg()}` });
      }
      alts.push({ description: `backup ${label(first.first)} at its consistency point ${first.out.earliest.lsn}`, args: `--target immediate${this.tlArg()}` });
    }
    if (last && where !== 'earliest') {
      if (last.maxTime !== null && last.earliestInTime !== null && last.maxTime > last.earliestInTime.consistentTime!) {
        alts.push({ description: `just before the newest archived transaction (${formatIso(last.maxTime)})`, args: `--target-time ${formatIso(last.maxTime)} --exclusive${this.tlArg()}` });
      }
      alts.push({ description: `the end of the archive at ${last.out.latest.lsn}${last.out.latest.time ? `, last transaction ${last.out.latest.time}` : ''}`, args: `--target latest${this.tlArg()}` });
    }
    return alts;
  }

  run(): Reach | Miss {
    switch (this.target.type) {
      case 'time':
        return this.time(this.target.time);
      case 'lsn':
        return this.lsn(this.target.lsn);
      case 'name':
        return this.name(this.target.name);
      case 'xid':
        return this.xid(this.target.xid);
      case 'immediate':
        return this.immediate();
      case 'latest':
        return this.latest();
    }
  }

  private time(T: number): Reach | Miss {
    const lin = this.lin;
    if (lin.usable.length === 0) return this.noBackup();
    const incl = this.inclusive;
    const fits = (u: UsableBackup) =>
      u.consistentTime !== null &&
      (incl ? u.consistentTime <= T : (u.maxXactBefore === null || u.maxXactBefore < T) && (u.backup.stopTime === null || u.backup.stopTime <= T));
    const past = (time: number) => (incl ? time > T : time >= T);
    const eligible = lin.usable.filter(fits).sort(newestFirst);
    if (eligible.length === 0) {
      const known = lin.usable.filter((u) => u.consistentTime !== null).sort((a, b) => a.consistentTime! - b.consistentTime!);
      const e = known[0];
      if (!e) {
        return { code: 'unscanned', reason: `the consistency time of the backups on timeline ${this.tl} is unknown (no stop time in UTC and no transaction read before it)`, alternatives: this.windowAlternatives('both') };
      }
      return {
        code: 'before-earliest',
        reason: `${formatIso(T)} is before the earliest consistency point on timeline ${this.tl}: backup ${label(e)} is consistent from ${formatIso(e.consistentTime!)} (LSN ${formatLsn(e.backup.stopLsn)})`,
        alternatives: this.windowAlternatives('earliest'),
      };
    }
    let unscanned: string | null = null;
    for (const u of eligible) {
      const res = lin.findXact(u.backup.stopLsn, u.run.lastSeg, (r) => past(r.time), (max) => past(max));
      if (res && 'unscanned' in res) {
        unscanned ??= res.unscanned.name;
        continue;
      }
      if (res && 'found' in res && res.found.endLsn <= u.run.endLsn) {
        const r = res.found;
        const prev = lin.lastXactBetween(u.backup.startLsn, r.lsn);
        return {
          timeline: this.tl,
          lin,
          backup: u,
          walEnd: r.endLsn,
          stop: {
            lsn: r.lsn,
            time: r.time,
            xid: r.xid,
            description:
              `recovery stops before ${describeXact(r)}` +
              (prev ? `; the last transaction replayed ends at ${formatIso(prev.time)} (transaction ${prev.xid}, ${formatLsn(prev.lsn)})` : ''),
          },
          notes: [],
        };
      }
    }
    if (unscanned) {
      return { code: 'unscanned', reason: `segment ${unscanned} was archived without its records being read, so the stop point for ${formatIso(T)} cannot be checked`, alternatives: this.windowAlternatives('both') };
    }
    // Not in the stretch after the newest eligible backup: is a transaction past T archived after a gap?
    const u0 = eligible[0]!;
    for (let run = lin.runAfter(u0.run); run; run = lin.runAfter(run)) {
      const res = lin.findXact(run.firstSeg * this.view.segSize, run.lastSeg, (r) => past(r.time), (max) => past(max));
      if (res && 'found' in res) {
        const nextRun = lin.runAfter(u0.run)!;
        const lastBefore = lin.lastXactBetween(u0.backup.stopLsn, u0.run.endLsn);
        const alts: Alternative[] = [];
        const maxBefore = lin.maxXactTimeFrom(u0.backup.stopLsn, u0.run);
        if (maxBefore !== null && u0.consistentTime !== null && maxBefore > u0.consistentTime) {
          alts.push({ description: `the latest time reachable before the gap (just before ${formatIso(maxBefore)})`, args: `--target-time ${formatIso(maxBefore)} --exclusive${this.tlArg()}` });
        }
        if (u0.run.lastRecordLsn !== null) alts.push({ description: `the last record before the gap`, args: `--target-lsn ${formatLsn(u0.run.lastRecordLsn)}${this.tlArg()}` });
        const after = lin.usable.filter((u) => u.run.firstSeg > u0.run.lastSeg && u.consistentTime !== null).sort((a, b) => a.backup.stopLsn - b.backup.stopLsn)[0];
        if (after) alts.push({ description: `the earliest time after the gap (backup ${label(after)})`, args: `--target-time ${formatIso(after.consistentTime!)}${this.tlArg()}` });
        return {
          code: 'in-gap',
          reason:
            `${formatIso(T)} falls in a gap on timeline ${this.tl}: ${lin.missingText(u0.run.lastSeg + 1, nextRun.firstSeg - 1)}, ` +
            `the archive is complete only up to ${formatLsn(u0.run.endLsn)}${lastBefore ? ` (last transaction ${formatIso(lastBefore.time)})` : ''}`,
          alternatives: alts,
        };
      }
    }
    const last = lin.lastXactBetween(u0.backup.stopLsn, u0.run.endLsn);
    return {
      code: 'after-latest',
      reason:
        `${formatIso(T)} is not before any archived transaction on timeline ${this.tl}` +
        (last ? ` (the newest ends at ${formatIso(last.time)}, ${formatLsn(last.lsn)})` : '') +
        ': a time target needs a transaction that ended after it; recover to the end of the archive instead',
      alternatives: this.windowAlternatives('latest'),
    };
  }

  private lsn(X: number): Reach | Miss {
    const lin = this.lin;
    if (lin.usable.length === 0) return this.noBackup();
    const eligible = lin.usable.filter((u) => u.backup.stopLsn <= X).sort(newestFirst);
    if (eligible.length === 0) {
      const e = [...lin.usable].sort((a, b) => a.backup.stopLsn - b.backup.stopLsn)[0]!;
      return {
        code: 'before-earliest',
        reason: `LSN ${formatLsn(X)} is before the earliest consistency point on timeline ${this.tl}: backup ${label(e)} is consistent from ${formatLsn(e.backup.stopLsn)}`,
        alternatives: [
          { description: `the earliest LSN reachable`, args: `--target-lsn ${formatLsn(e.backup.stopLsn)}${this.tlArg()}` },
          ...this.windowAlternatives('earliest'),
        ],
      };
    }
    const u = eligible[0]!;
    const run = u.run;
    if (run.lastRecordLsn === null) {
      return { code: 'unscanned', reason: `the record boundaries of the WAL after backup ${label(u)} are unknown (segments archived without being read)`, alternatives: [] };
    }
    if (X <= run.lastRecordLsn) {
      // The first record at or past X ends no later than the last record of the first segment,
      // from seg(X) on, whose last record starts at or past X.
      let walEnd = run.endLsn;
      for (const s of lin.segments(Math.max(this.view.segOf(X), run.firstSeg), run.lastSeg, { skip: allUnscanned })) {
        if (s.lastRecordLsn !== null && s.lastRecordLsn >= X && s.lastRecordEndLsn !== null) {
          walEnd = s.lastRecordEndLsn;
          break;
        }
      }
      return {
        timeline: this.tl,
        lin,
        backup: u,
        walEnd,
        stop: { lsn: X, time: null, description: `recovery stops ${this.inclusive ? 'after' : 'before'} the first record at or past ${formatLsn(X)}` },
        notes: [],
      };
    }
    const next = lin.runAfter(run);
    if (next) {
      const nextUsable = lin.usable.filter((v) => v.run.firstSeg > run.lastSeg).sort((a, b) => a.backup.stopLsn - b.backup.stopLsn)[0];
      return {
        code: 'in-gap',
        reason:
          `LSN ${formatLsn(X)} is past a gap on timeline ${this.tl}: ${lin.missingText(run.lastSeg + 1, next.firstSeg - 1)} ` +
          `and the WAL from backup ${label(u)} ends at ${formatLsn(run.endLsn)}`,
        alternatives: [
          { description: 'the last record before the gap', args: `--target-lsn ${formatLsn(run.lastRecordLsn)}${this.tlArg()}` },
          ...(nextUsable ? [{ description: `the earliest LSN after the gap (backup ${label(nextUsable)})`, args: `--target-lsn ${formatLsn(nextUsable.backup.stopLsn)}${this.tlArg()}` }] : []),
        ],
      };
    }
    return {
      code: 'after-latest',
      reason: `LSN ${formatLsn(X)} is past the end of the archived WAL on timeline ${this.tl} (the last complete record starts at ${formatLsn(run.lastRecordLsn)})`,
      alternatives: [
        { description: 'the last archived record', args: `--target-lsn ${formatLsn(run.lastRecordLsn)}${this.tlArg()}` },
        { description: `the end of the archive at ${formatLsn(run.endLsn)}`, args: `--target latest${this.tlArg()}` },
      ],
    };
  }

  /**
   * Shared by name and xid targets: occurrences of the event on this lineage, the newest one
   * reachable wins (PostgreSQL stops at the first occurrence after the backup's start).
   */
  private event<R extends { lsn: number; endLsn: number; segNo: number; time: number }>(
    occ: R[],
    what: (r: R) => string,
    stopAfter: boolean,
  ): Reach | Miss {
    const lin = this.lin;
    if (lin.usable.length === 0) return this.noBackup();
    const inRun = (u: UsableBackup, r: R) => r.segNo >= u.run.firstSeg && r.segNo <= u.run.lastSeg && r.endLsn <= u.run.endLsn;
    for (let i = occ.length - 1; i >= 0; i--) {
      const o = occ[i]!;
      const cands = lin.usable
        .filter((u) => u.backup.stopLsn <= o.lsn && inRun(u, o) && !occ.some((p) => p.lsn >= u.backup.startLsn && p.lsn < o.lsn))
        .sort(newestFirst);
      const u = cands[0];
      if (!u) continue;
      const notes: string[] = [];
      if (occ.length > 1) {
        notes.push(`${occ.length} archived occurrences on this timeline; this plan reaches the one at ${formatLsn(o.lsn)} (others: ${occ.filter((p) => p !== o).map((p) => formatLsn(p.lsn)).join(', ')}; reach one with --target-lsn)`);
      }
      return {
        timeline: this.tl,
        lin,
        backup: u,
        walEnd: o.endLsn,
        stop: { lsn: o.lsn, time: o.time, xid: 'xid' in o ? (o.xid as number) : undefined, description: `recovery stops ${stopAfter ? 'after' : 'before'} ${what(o)}` },
        notes,
      };
    }
    const o = occ[occ.length - 1]!;
    const before = lin.usable.filter((u) => u.backup.stopLsn <= o.lsn).sort(newestFirst);
    if (before.length === 0) {
      const e = [...lin.usable].sort((a, b) => a.backup.stopLsn - b.backup.stopLsn)[0]!;
      return {
        code: 'before-earliest',
        reason: `${what(o)} is before the earliest consistency point on timeline ${this.tl}: backup ${label(e)} is consistent from ${formatLsn(e.backup.stopLsn)}${e.consistentTime !== null ? ` (${formatIso(e.consistentTime)})` : ''}`,
        alternatives: this.windowAlternatives('earliest'),
      };
    }
    const u = before[0]!;
    if (!inRun(u, o)) {
      return {
        code: 'in-gap',
        reason: `${what(o)} lies past a gap on timeline ${this.tl}: after backup ${label(u)} the archive is complete only up to ${formatLsn(u.run.endLsn)} (segment ${lin.designatedName(u.run.lastSeg + 1)} is missing)`,
        alternatives: this.windowAlternatives('latest'),
      };
    }
    return {
      code: 'before-earliest',
      reason: `${what(o)} cannot be reached: an earlier occurrence follows the start of every usable backup, and PostgreSQL stops at the first one`,
      alternatives: [{ description: `the same point by LSN`, args: `--target-lsn ${formatLsn(o.lsn)}${this.tlArg()}` }],
    };
  }

  private name(name: string): Reach | Miss {
    const occ = this.lin.restorePoints().filter((r) => r.name === name && this.lin.has(r.segNo));
    if (occ.length === 0) return { code: 'unknown-name', reason: `timeline ${this.tl} has no archived restore point named "${name}"`, alternatives: [] };
    return this.event<RestorePointRecord>(occ, (r) => `restore point "${r.name}" at ${formatLsn(r.lsn)} (${formatIso(r.time)})`, true);
  }

  private xid(xid: number): Reach | Miss {
    const occ = this.lin.xactsOf(xid);
    if (occ.length === 0) return { code: 'unknown-xid', reason: `no commit or abort of transaction ${xid} is archived on timeline ${this.tl}`, alternatives: [] };
    return this.event<XactRecord>(occ, (r) => describeXact(r), this.inclusive);
  }

  private immediate(): Reach | Miss {
    const u = [...this.lin.usable].sort(newestFirst)[0];
    if (!u) return this.noBackup();
    return {
      timeline: this.tl,
      lin: this.lin,
      backup: u,
      walEnd: u.backup.stopLsn,
      stop: { lsn: u.backup.stopLsn, time: u.consistentTime, description: `recovery stops as soon as backup ${label(u)} is consistent, at ${formatLsn(u.backup.stopLsn)}` },
      notes: [],
    };
  }

  private latest(): Reach | Miss {
    const lin = this.lin;
    const ws = windowsOf(this.view, lin);
    const w = ws[ws.length - 1];
    if (!w) return this.noBackup();
    const u = [...w.backups].sort(newestFirst)[0]!;
    const run = w.run;
    const notes: string[] = [];
    const next = lin.runAfter(run);
    if (next) {
      const lastRun = lin.runs[lin.runs.length - 1]!;
      notes.push(
        `${lin.missingText(run.lastSeg + 1, next.firstSeg - 1)}: the WAL archived after the gap (up to ${lin.designatedName(lastRun.lastSeg)}) cannot be replayed and recovery ends at the gap`,
      );
    }
    let override: Record<string, string> | undefined;
    // Where this lineage's copy of the next segment is missing but an ancestor's copy of it is
    // archived, PostgreSQL would fall back to the ancestor's copy and replay WAL written there
    // after the fork: pin the end instead.
    const nextSeg = run.lastSeg + 1;
    const fileTl = lin.fileTimeline(nextSeg);
    const olderCopy = lin.entries.find((e) => e.timeline !== fileTl && this.view.has(e.timeline, nextSeg) && e.timeline < fileTl);
    if (olderCopy && run.lastRecordLsn !== null) {
      override = { recovery_target_lsn: `'${formatLsn(run.lastRecordLsn)}'` };
      notes.push(
        `timeline ${fileTl}'s copy of segment ${lin.designatedName(nextSeg)} is missing while timeline ${olderCopy.timeline}'s is archived: ` +
          `the end is pinned with recovery_target_lsn so PostgreSQL cannot replay timeline ${olderCopy.timeline}'s WAL from after the fork`,
      );
    }
    return {
      timeline: this.tl,
      lin,
      backup: u,
      walEnd: run.endLsn,
      stop: {
        lsn: run.endLsn,
        time: null,
        description: `recovery replays all archived WAL, to ${formatLsn(run.endLsn)}${w.out.latest.time ? ` (last transaction ${w.out.latest.time})` : ''}; WAL archived later is replayed too`,
      },
      notes,
      override,
    };
  }
}

