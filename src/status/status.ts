/**
 * `walship status`: what the operator needs at one look, collected from the catalog (brought up
 * to date with the repository first), the repository's verify state and, with --pgdata, the data
 * directory's pg_wal; judged by health.ts.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Catalog } from '../catalog/catalog.js';
import { loadPlannerInput } from '../recovery/catalog-input.js';
import { listBackups } from '../backup/list.js';
import { computeRanges } from '../recovery/ranges.js';
import { msToMicros } from '../time.js';
import { parseLsn } from '../wal/names.js';
import { WalshipError, describeSystemError } from '../errors.js';
import { syncForReading, type RepoContext } from '../sync/sync.js';
import { readState } from '../verify/state.js';
import { latestDrill } from '../drill/record.js';
import type { StorageDriver } from '../storage/driver.js';
import type { StatusFacts } from './health.js';

export interface StatusOptions {
  /** A data directory whose pg_wal/archive_status is counted. */
  pgdata?: string;
  noSync: boolean;
  nowMs?: number;
}

async function readySegments(pgdata: string): Promise<number> {
  const dir = join(pgdata, 'pg_wal', 'archive_status');
  try {
    return (await fsp.readdir(dir)).filter((n) => n.endsWith('.ready') && !n.endsWith('.history.ready')).length;
  } catch (err) {
    throw new WalshipError('USAGE', `--pgdata ${pgdata}: cannot read ${dir}: ${describeSystemError(err)}`);
  }
}

async function lastVerify(storage: StorageDriver, nowMs: number): Promise<StatusFacts['verify']> {
  const s = await readState(storage);
  return s.at ? { at: s.at, ageSeconds: (nowMs - Date.parse(s.at)) / 1000, full: s.full, problems: s.problems } : null;
}

async function lastDrill(storage: StorageDriver, nowMs: number): Promise<StatusFacts['drill']> {
  const d = await latestDrill(storage);
  if (!d) return null;
  const target = d.target.value === null ? d.target.type : `${d.target.type} ${d.target.value}`;
  return { at: d.finishedAt, ageSeconds: (nowMs - Date.parse(d.finishedAt)) / 1000, passed: d.verdict === 'passed', backup: d.backup.id, target, rtoSeconds: d.durations.restore + (d.durations.replay ?? 0), failure: d.failure };
}

/** The dropped segments (push_queue_max) still missing from the archive; null: none. */
function droppedFacts(cat: Catalog, newestStart: string | null): StatusFacts['archiving']['dropped'] {
  const segSize = cat.repository()?.wal_segment_size ?? 16 * 1024 * 1024;
  const missing = cat.dropped().filter((d) => cat.walFile(d.name) === null);
  if (missing.length === 0) return null;
  const start = newestStart === null ? -1 : (parseLsn(newestStart) ?? -1);
  const times = missing.map((d) => d.droppedAt).sort();
  return {
    count: missing.length,
    first: missing[0]!.name,
    last: missing[missing.length - 1]!.name,
    firstAt: times[0]!,
    lastAt: times[times.length - 1]!,
    afterNewestBackup: missing.filter((d) => (d.segNo + 1) * segSize > start).length,
  };
}

export async function collectStatus(ctx: RepoContext, opts: StatusOptions): Promise<StatusFacts> {
  const nowMs = opts.nowMs ?? Date.now();
  const stale = await syncForReading(ctx, opts.noSync);
  const verify = stale ? null : await lastVerify(ctx.storage, nowMs);
  const drill = stale ? null : await lastDrill(ctx.storage, nowMs);
  const ready = opts.pgdata === undefined ? null : await readySegments(opts.pgdata);
  return Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) => {
    const totals = cat.totals();
    const ranges = computeRanges(loadPlannerInput(cat), msToMicros(nowMs));
    const backups = listBackups(cat);
    const restorable = backups.filter((b) => b.restorable && b.stopTime !== null);
    restorable.sort((a, b) => Date.parse(b.stopTime!) - Date.parse(a.stopTime!));
    const newest = restorable[0];
    const backupBytes = backups.reduce((n, b) => n + (b.source === 'walship' ? (b.storedBytes ?? 0) : 0), 0);
    return {
      now: new Date(nowMs).toISOString(),
      stale: stale ? stale.reason : null,
      archiving: {
        lastArchived: totals.lastPush,
        lagSeconds: ranges.archiveLag?.seconds ?? null,
        newestXactTime: ranges.archiveLag?.newestXactTime ?? null,
        readySegments: ready,
        refusals: cat.refusals().map((r) => ({ name: r.name, code: r.code, message: r.message, lastAt: r.lastAt, count: r.count })),
        dropped: droppedFacts(cat, newest?.startLsn ?? null),
      },
      backups: {
        restorable: restorable.length,
        newest: newest
          ? { name: newest.name, label: newest.label, stopTime: newest.stopTime!, ageSeconds: (nowMs - Date.parse(newest.stopTime!)) / 1000, storedBytes: newest.storedBytes }
          : null,
      },
      windows: ranges.timelines
        .filter((t) => t.windows.length > 0)
        .map((t) => {
          const w = t.windows[t.windows.length - 1]!;
          const from = w.timeTargets?.from ?? w.earliest.time;
          const to = w.timeTargets?.before ?? w.latest.time;
          return { timeline: t.timeline, from, to, seconds: from && to ? Math.max(0, (Date.parse(to) - Date.parse(from)) / 1000) : null };
        }),
      verify,
      drill,
      repository: { walFiles: totals.files, walBytes: totals.storedBytes, backupBytes },
    };
  });
}
