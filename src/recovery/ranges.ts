/**
 * `walship ranges`: to which moments can this cluster be recovered? Pure: the input model in,
 * a report (stable JSON, docs/commands.md) out.
 *
 * Per timeline, a window is a stretch of history recovery can stop anywhere in: it starts at
 * the consistency point of the oldest base backup whose WAL lies in one gap-free stretch of
 * segments (read along the timeline's lineage), and ends at the last complete record of that
 * stretch. A gap (a missing segment) ends a window; a later backup past the gap starts a new
 * one. Backups whose consistency points fall inside a window are listed with it: `plan` starts
 * from the newest one before the target.
 */
import { ArchiveView } from './archive-view.js';
import { lineageOf, type Lineage, type UsableBackup } from './lineage.js';
import { type BackupFacts, type PlannerInput } from './input.js';
import { formatDuration, formatIso } from '../time.js';
import { formatLsn } from '../wal/names.js';

export interface BackupOut {
  name: string;
  label: string;
  startLsn: string;
  stopLsn: string;
  startTimeline: number;
  stopTimeline: number;
  stopTime: string | null;
  /** Earliest time target this backup serves (stop time raised to the newest transaction replayed before its stop LSN, from its start LSN). */
  consistentTime: string | null;
}

export interface SegmentRangeOut {
  timeline: number;
  first: string;
  last: string;
  count: number;
}

export interface WindowOut {
  backup: BackupOut;
  newerBackups: BackupOut[];
  earliest: { lsn: string; time: string | null };
  latest: { lsn: string; time: string | null; xid: number | null };
  /** Inclusive time targets t with from <= t < before are reachable; null when none is. */
  timeTargets: { from: string; before: string } | null;
  wal: SegmentRangeOut[];
  restorePoints: { name: string; time: string; lsn: string; timeline: number }[];
  end: 'gap' | 'end-of-archive' | 'timeline-end';
  /** The gap that ends the window; `dropped`: how many of its segments archive-push dropped under push_queue_max (the first drop's time and reason). */
  missing: { first: string; last: string; count: number; dropped: { count: number; at: string; reason: string } | null } | null;
  branches: { timeline: number; at: string }[];
}

export interface TimelineRangesOut {
  timeline: number;
  parent: number | null;
  switchpoint: string | null;
  windows: WindowOut[];
  unusableBackups: { name: string; label: string; reason: string }[];
  notes: string[];
}

export interface RangesReport {
  now: string;
  archiveLag: { newestXactTime: string; segment: string; timeline: number; seconds: number } | null;
  timelines: TimelineRangesOut[];
}

export function backupOut(b: BackupFacts, u?: UsableBackup): BackupOut {
  return {
    name: b.name,
    label: b.label,
    startLsn: formatLsn(b.startLsn),
    stopLsn: formatLsn(b.stopLsn),
    startTimeline: b.startTimeline,
    stopTimeline: b.stopTimeline,
    stopTime: b.stopTime === null ? null : formatIso(b.stopTime),
    consistentTime: u?.consistentTime == null ? null : formatIso(u.consistentTime),
  };
}

export interface WindowFacts {
  first: UsableBackup;
  backups: UsableBackup[];
  /**
   * The backup consistent at the earliest time (null when no time is known). Not always `first`:
   * a backup known from its history file, whose stop time is rounded up to the next second, can
   * end before another by LSN and after it in time.
   */
  earliestInTime: UsableBackup | null;
  run: Lineage['runs'][number];
  /** Newest transaction time after the first backup's consistency point (time targets < it). */
  maxTime: number | null;
  out: WindowOut;
}

/** The windows of one timeline (also used by `plan` for alternatives). */
export function windowsOf(view: ArchiveView, lin: Lineage): WindowFacts[] {
  const out: WindowFacts[] = [];
  for (const run of lin.runs) {
    const backups = lin.usable.filter((u) => u.run === run);
    if (backups.length === 0) continue;
    const first = backups[0]!;
    const start = first.backup.stopLsn;
    let earliestInTime: UsableBackup | null = null;
    for (const u of backups) {
      if (u.consistentTime !== null && (earliestInTime === null || u.consistentTime < earliestInTime.consistentTime!)) earliestInTime = u;
    }
    const fromTime = earliestInTime?.consistentTime ?? null;
    const last = lin.lastXactBetween(start, run.endLsn);
    const maxTime = lin.maxXactTimeFrom(start, run);
    const next = lin.runAfter(run);
    let end: WindowOut['end'] = 'end-of-archive';
    let missing: WindowOut['missing'] = null;
    if (next) {
      end = 'gap';
      missing = {
        first: lin.designatedName(run.lastSeg + 1),
        last: lin.designatedName(next.firstSeg - 1),
        count: next.firstSeg - run.lastSeg - 1,
        dropped: lin.droppedIn(run.lastSeg + 1, next.firstSeg - 1),
      };
    } else if (view.children(lin.timeline).some((c) => view.segOf(c.switchpoint) <= run.lastSeg + 1 && c.switchpoint >= start)) {
      end = 'timeline-end';
    }
    const branches: WindowOut['branches'] = [];
    for (const e of lin.entries) {
      for (const c of view.children(e.timeline)) {
        if (c.switchpoint >= start && view.segOf(c.switchpoint) <= run.lastSeg + 1 && !lin.includes(c.timeline)) {
          branches.push({ timeline: c.timeline, at: formatLsn(c.switchpoint) });
        }
      }
    }
    out.push({
      first,
      backups,
      earliestInTime,
      run,
      maxTime,
      out: {
        backup: backupOut(first.backup, first),
        newerBackups: backups.slice(1).map((u) => backupOut(u.backup, u)),
        // The earliest LSN (the first backup's consistency point) and the earliest time any of the
        // window's backups is consistent at: what plan accepts from (it takes whichever backup fits).
        earliest: { lsn: formatLsn(start), time: fromTime === null ? null : formatIso(fromTime) },
        latest: { lsn: formatLsn(run.endLsn), time: last ? formatIso(last.time) : null, xid: last ? last.xid : null },
        timeTargets: fromTime !== null && maxTime !== null && maxTime > fromTime ? { from: formatIso(fromTime), before: formatIso(maxTime) } : null,
        wal: lin.segmentRanges(view.segOf(first.backup.startLsn), run.lastSeg),
        restorePoints: lin
          .restorePoints()
          .filter((r) => r.lsn >= start && r.endLsn <= run.endLsn)
          .map((r) => ({ name: r.name, time: formatIso(r.time), lsn: formatLsn(r.lsn), timeline: lin.timelineAt(r.lsn) })),
        end,
        missing,
        branches,
      },
    });
  }
  return out;
}

export function computeRanges(input: PlannerInput, nowMicros: number): RangesReport {
  const view = new ArchiveView(input);
  const newest = view.newestXact();
  const unscanned = view.unscannedCount();
  const timelines: TimelineRangesOut[] = view.timelineIds().map((tl) => {
    const lin = lineageOf(view, tl);
    const facts = view.timelineFacts(tl);
    const notes: string[] = [];
    if (lin.incomplete) notes.push(`the history file of timeline ${lin.entries[0]!.timeline} is not archived: its ancestors are unknown`);
    return {
      timeline: tl,
      parent: facts?.parent ?? null,
      switchpoint: facts ? formatLsn(facts.switchpoint) : null,
      windows: windowsOf(view, lin).map((w) => w.out),
      unusableBackups: lin.unusable.map((u) => ({ name: u.backup.name, label: u.backup.label, reason: u.reason })),
      notes,
    };
  });
  if (unscanned > 0 && timelines.length > 0) {
    timelines[timelines.length - 1]!.notes.push(
      `${unscanned} archived segment(s) were indexed without their records being read: times in them are unknown`,
    );
  }
  return {
    now: formatIso(nowMicros),
    archiveLag: newest
      ? {
          newestXactTime: formatIso(newest.time),
          segment: newest.segment.name,
          timeline: newest.segment.timeline,
          seconds: Math.round((nowMicros - newest.time) / 1e4) / 100,
        }
      : null,
    timelines,
  };
}

/** Rows as lines of aligned columns (two spaces between, indented by two; the last column unpadded). */
export function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => '  ' + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

export function renderRanges(r: RangesReport): string {
  const out: string[] = [];
  if (r.timelines.length === 0) out.push('nothing is archived yet');
  for (const t of r.timelines) {
    if (out.length > 0) out.push('');
    const from = t.parent !== null ? ` (branched from timeline ${t.parent} at ${t.switchpoint})` : '';
    out.push(`timeline ${t.timeline}${from}`);
    if (t.windows.length === 0) {
      out.push('  no recoverable window: no base backup with its WAL complete on this timeline');
    } else {
      const rows: string[][] = [['FROM (consistent)', 'TO (last transaction)', 'LSN', 'BACKUP', 'ENDS']];
      for (const w of t.windows) {
        const gap = w.missing && (w.missing.count === 1 ? w.missing.first : `${w.missing.first}..${w.missing.last}`);
        const dropped = w.missing?.dropped ? ` (${w.missing.dropped.count} dropped by push_queue_max from ${w.missing.dropped.at})` : '';
        const ends = w.end === 'gap' ? `gap: ${gap} missing${dropped}` : w.end === 'timeline-end' ? 'timeline ends (branched)' : 'end of archive';
        rows.push([
          w.earliest.time ?? '(time unknown)',
          w.latest.time ?? '(no transaction)',
          `${w.earliest.lsn} .. ${w.latest.lsn}`,
          w.backup.label || w.backup.name,
          ends,
        ]);
      }
      out.push(...table(rows));
      t.windows.forEach((w, i) => {
        const tag = t.windows.length > 1 ? `window ${i + 1}: ` : '';
        if (w.timeTargets) out.push(`  ${tag}time targets from ${w.timeTargets.from} to before ${w.timeTargets.before} (later: --target latest)`);
        else out.push(`  ${tag}no time target is reachable (no transaction archived after the consistency point): use --target immediate, --target latest or an LSN`);
        for (const b of w.newerBackups) out.push(`  ${tag}also backup ${b.label || b.name}, consistent from ${b.consistentTime ?? b.stopLsn}`);
        for (const p of w.restorePoints) out.push(`  ${tag}restore point "${p.name}"  ${p.time}  ${p.lsn}`);
        for (const b of w.branches) out.push(`  ${tag}timeline ${b.timeline} branches off at ${b.at}`);
      });
    }
    for (const u of t.unusableBackups) out.push(`  unusable backup ${u.label || u.name}: ${u.reason}`);
    for (const n of t.notes) out.push(`  note: ${n}`);
  }
  out.push('');
  out.push(
    r.archiveLag
      ? `archive lag  ${formatDuration(r.archiveLag.seconds)} (newest archived transaction ${r.archiveLag.newestXactTime}, in ${r.archiveLag.segment})`
      : 'archive lag  unknown (no transaction archived)',
  );
  return out.join('\n') + '\n';
}
