/**
 * `walship expire`, the decision: which backups and which WAL a retention policy lets go, and the
 * proof that the recoverable windows it keeps stay exactly as they are. Pure: the planner's input
 * and the backups in, a plan out (expire.ts carries it out).
 *
 * What is kept:
 * - Backups: walship's own restorable ones, newest first by the moment they completed (never by
 *   LSN: a timeline that branched off the past has lower LSNs and newer backups). `retain_full = N`
 *   keeps the newest N; `retain_window = D` keeps the newest one consistent at or before now - D,
 *   so every moment since can be reached. Both given: whichever keeps more. Every backup newer
 *   than the oldest kept one is kept, restorable or not. Unfinished backups are kept until they
 *   started longer ago than `retain_incomplete`, failed ones go then too.
 * - WAL: every segment, .partial and .backup file of any timeline numbered at or after the first
 *   segment of the oldest kept or unfinished backup (no kept window reads anything older: a
 *   window starts at its first backup's start). With `retain_wal_before_oldest` none goes.
 *   Timeline history files are always kept: PostgreSQL picks a new timeline's number by asking
 *   the archive which history files exist, so removing one could let a promotion reuse a number.
 *
 * The proof: the windows of `ranges` over the kept backups are computed with all the WAL and
 * with the WAL that remains; the plan is refused (INTERNAL) unless they are identical.
 */
import { WalshipError } from '../errors.js';
import type { BackupFacts, PlannerInput, SegmentSource } from '../recovery/input.js';
import { computeRanges, type RangesReport, type TimelineRangesOut } from '../recovery/ranges.js';
import { isoToMicros } from '../time.js';

export interface RetentionPolicy {
  /** retain_full: the newest N restorable backups. */
  full: number | null;
  /** retain_window, in seconds. */
  windowSeconds: number | null;
  /** retain_wal_before_oldest. */
  walBeforeOldest: boolean;
  /** retain_incomplete, in seconds. */
  incompleteSeconds: number;
}

/** A backup as the catalog lists it (any status, any source). */
export interface BackupEntry {
  name: string;
  source: 'walship' | 'history-file';
  status: string;
  label: string;
  startLsn: number;
  stopLsn: number;
  startTime: string | null;
  stopTime: string | null;
}

export interface KeptBackup {
  name: string;
  label: string;
  stopTime: string | null;
  consistentTime: string | null;
  why: string;
}

export interface RemovedBackup {
  name: string;
  label: string;
  status: string;
  startTime: string | null;
  why: string;
}

export interface ExpirePlan {
  policy: RetentionPolicy;
  kept: KeptBackup[];
  removed: RemovedBackup[];
  /** WAL of every timeline in segments numbered below this goes (history files stay); null: none. */
  walBelowSeg: number | null;
  /** Backup history files that go with a removed backup although its WAL stays. */
  removedFiles: string[];
  /** What `ranges` reports once the plan is carried out (for the kept backups). */
  after: RangesReport;
  notes: string[];
}

const byCompletion = (a: BackupEntry, b: BackupEntry): number =>
  (isoToMicros(b.stopTime) ?? -Infinity) - (isoToMicros(a.stopTime) ?? -Infinity) || b.stopLsn - a.stopLsn || b.name.localeCompare(a.name);

/** The windows of every timeline that has some: what a plan must leave untouched. */
function windowsOf(r: RangesReport): Pick<TimelineRangesOut, 'timeline' | 'windows'>[] {
  return r.timelines.filter((t) => t.windows.length > 0).map((t) => ({ timeline: t.timeline, windows: t.windows }));
}

/** The segments numbered `from` on, of every timeline (what remains once older WAL is removed). */
export function segmentsFrom(src: SegmentSource, from: number): SegmentSource {
  return {
    stretches: () =>
      src
        .stretches()
        .filter((s) => s.lastSeg >= from)
        .map((s) =>
          s.firstSeg >= from
            ? s
            : { ...s, firstSeg: from, unscanned: s.unscanned === 0 ? 0 : src.segments(s.timeline, from, s.lastSeg).filter((x) => !x.scanned).length, maxXactTime: src.maxXactTime(s.timeline, from, s.lastSeg) },
        ),
    segments: (tl, a, b) => src.segments(tl, Math.max(a, from), b),
    maxXactTime: (tl, a, b) => (Math.max(a, from) > b ? null : src.maxXactTime(tl, Math.max(a, from), b)),
  };
}

export function planExpire(input: PlannerInput, backups: readonly BackupEntry[], policy: RetentionPolicy, nowMicros: number): ExpirePlan {
  if (policy.full === null && policy.windowSeconds === null) {
    throw new WalshipError('USAGE', 'no retention policy: set retain_full (the newest N backups) and/or retain_window (e.g. 14d), in the config file or as --retain-full / --retain-window');
  }
  const segOf = (lsn: number) => Math.floor(lsn / input.segSize);
  const notes: string[] = [];

  // When each backup is consistent, as `ranges` sees it now (absent: not restorable).
  const consistent = new Map<string, string | null>();
  for (const t of computeRanges(input, nowMicros).timelines) {
    for (const w of t.windows) for (const b of [w.backup, ...w.newerBackups]) if (!consistent.has(b.name)) consistent.set(b.name, b.consistentTime);
  }
  const own = backups.filter((b) => b.source === 'walship' && b.status === 'complete').sort(byCompletion);
  const restorable = own.filter((b) => consistent.has(b.name));

  const kept = new Map<string, string>();
  let oldest = -1; // index in `own` of the oldest kept backup
  const keep = (b: BackupEntry, why: string) => {
    kept.set(b.name, why);
    oldest = Math.max(oldest, own.indexOf(b));
  };
  if (policy.full !== null) {
    for (const b of restorable.slice(0, policy.full)) keep(b, `one of the newest ${policy.full} (retain_full)`);
    if (restorable.length < policy.full) notes.push(`retain_full = ${policy.full}, but only ${restorable.length} restorable backup(s) exist: every backup is kept`);
  }
  if (policy.windowSeconds !== null) {
    const edge = nowMicros - policy.windowSeconds * 1e6;
    const anchor = restorable.find((b) => {
      const c = isoToMicros(consistent.get(b.name) ?? null);
      return c !== null && c <= edge;
    });
    if (anchor) keep(anchor, 'the newest consistent before the window (retain_window)');
    else {
      for (const b of restorable) keep(b, 'within the window (retain_window)');
      if (restorable.length > 0) notes.push(`no restorable backup is consistent before the start of retain_window: every backup is kept, and the window is not covered yet`);
    }
  }
  if (restorable.length === 0) notes.push('no restorable walship backup: no backup and no WAL is removed (failed and unfinished backups past retain_incomplete are)');
  for (let i = 0; i <= oldest; i++) if (!kept.has(own[i]!.name)) kept.set(own[i]!.name, 'newer than a kept backup');

  const removed: RemovedBackup[] = [];
  const entry = (b: BackupEntry, why: string): RemovedBackup => ({ name: b.name, label: b.label, status: b.status, startTime: b.startTime, why });
  if (restorable.length > 0) for (const b of own.slice(oldest + 1)) removed.push(entry(b, 'older than every kept backup'));

  // Unfinished backups may still be running: they and their WAL stay until retain_incomplete.
  const limit = nowMicros - policy.incompleteSeconds * 1e6;
  const unfinished: BackupEntry[] = [];
  for (const b of backups) {
    if (b.source !== 'walship' || b.status === 'complete') continue;
    const started = isoToMicros(b.startTime);
    if (started !== null && started < limit) removed.push(entry(b, `${b.status === 'failed' ? 'failed' : 'never finished'}, started before retain_incomplete`));
    else if (b.status !== 'failed') unfinished.push(b);
  }

  const keptOwn = own.filter((b) => kept.has(b.name));
  let walBelowSeg: number | null = null;
  if (!policy.walBeforeOldest && keptOwn.length > 0 && restorable.length > 0) {
    walBelowSeg = Math.min(...[...keptOwn, ...unfinished].map((b) => segOf(b.startLsn)));
  }

  // The backup history file a removed walship backup left beside its WAL: it would read as a
  // backup of its own (one whose data is gone) while that WAL stays.
  const removedStarts = new Set(removed.filter((r) => r.status === 'complete').map((r) => own.find((b) => b.name === r.name)!.startLsn));
  const removedFiles = backups
    .filter((b) => b.source === 'history-file' && removedStarts.has(b.startLsn) && (walBelowSeg === null || segOf(b.startLsn) >= walBelowSeg))
    .map((b) => b.name);

  // The proof: the kept backups' windows with every segment, and with those that remain.
  const removedNames = new Set([...removed.map((r) => r.name), ...removedFiles]);
  const survivor = (b: BackupFacts) =>
    !removedNames.has(b.name) && (walBelowSeg === null || !backups.some((e) => e.name === b.name && e.source === 'history-file') || segOf(b.startLsn) >= walBelowSeg);
  const keptInput: PlannerInput = { ...input, backups: input.backups.filter(survivor) };
  const afterInput: PlannerInput =
    walBelowSeg === null
      ? keptInput
      : { ...keptInput, segments: segmentsFrom(input.segments, walBelowSeg), restorePoints: input.restorePoints.filter((r) => r.segNo >= walBelowSeg!) };
  const before = computeRanges(keptInput, nowMicros);
  const after = computeRanges(afterInput, nowMicros);
  const a = JSON.stringify(windowsOf(before));
  const b = JSON.stringify(windowsOf(after));
  if (a !== b) {
    throw new WalshipError('INTERNAL', 'expire refused: removing the WAL it planned to would change a window it keeps (a bug in walship; nothing was removed)');
  }

  return {
    policy,
    kept: keptOwn.map((b) => ({ name: b.name, label: b.label, stopTime: b.stopTime, consistentTime: consistent.get(b.name) ?? null, why: kept.get(b.name)! })),
    removed,
    walBelowSeg,
    removedFiles,
    after,
    notes,
  };
}
