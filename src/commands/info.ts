/**
 * `walship info`: what the repository holds, as a stable JSON shape (docs/commands.md) and a
 * readable text rendering.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { formatLsn, segmentName } from '../wal/names.js';
import type { Catalog, Refusal } from '../catalog/catalog.js';
import { listBackups, type BackupListing } from '../backup/list.js';
import { openArchiveContext } from '../archive/context.js';
import { addSettingOptions, addSyncOption, staleNote, syncFirst, type CommandDef } from './options.js';

export interface SegmentRun {
  first: string;
  last: string;
  count: number;
  startLsn: string;
  endLsn: string;
}

export interface InfoReport {
  repository: { url: string; systemIdentifier: string | null; pgMajor: number | null; walSegmentSize: number | null; createdAt: string | null };
  catalog: string;
  timelines: {
    timeline: number;
    parent: number | null;
    switchpoint: string | null;
    segments: number;
    ranges: SegmentRun[];
    gaps: SegmentRun[];
    partial: string[];
  }[];
  historyFiles: string[];
  backups: BackupListing[];
  totals: { files: number; rawBytes: number; storedBytes: number };
  lastPush: { name: string; at: string } | null;
  /** Files archive-push refused on this host and PostgreSQL keeps retrying, most recent first. */
  refusals: Refusal[];
}

/**
 * Whether PostgreSQL still retries a refused file: it is `.ready` in its pg_wal, or that cannot be
 * seen from here (another user's directory). A file archived since, or a pg_wal that is gone, no.
 */
function stillReady(r: Refusal): boolean {
  try {
    statSync(join(r.walDir, 'archive_status', `${r.name}.ready`));
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/**
 * Runs of archived segments and the gaps between them, from stretches of consecutive segment
 * numbers ([first, last], ascending; adjacent stretches join into one run).
 */
export function segmentRuns(stretches: readonly (readonly [number, number])[], timeline: number, segSize: number): { ranges: SegmentRun[]; gaps: SegmentRun[] } {
  const ranges: SegmentRun[] = [];
  const gaps: SegmentRun[] = [];
  const run = (a: number, b: number): SegmentRun => ({
    first: segmentName(timeline, a, segSize),
    last: segmentName(timeline, b, segSize),
    count: b - a + 1,
    startLsn: formatLsn(a * segSize),
    endLsn: formatLsn((b + 1) * segSize),
  });
  let start: number | undefined;
  let end = -1;
  for (const [first, last] of stretches) {
    if (start !== undefined && first <= end + 1) {
      end = Math.max(end, last);
      continue;
    }
    if (start !== undefined) {
      ranges.push(run(start, end));
      gaps.push(run(end + 1, first - 1));
    }
    start = first;
    end = last;
  }
  if (start !== undefined) ranges.push(run(start, end));
  return { ranges, gaps };
}

/** The report, from the catalog alone (which holds the repository's identity once a segment is indexed). */
export function buildInfo(cat: Catalog, repoUrl: string): InfoReport {
  const repo = cat.repository();
  const segSize = repo?.wal_segment_size ?? 16 * 1024 * 1024;
  const segs = cat.segmentStretches();
  const tlRows = new Map(cat.timelines().map((t) => [t.timeline, t]));
  const partials = cat.walFiles('partial');
  const tls = new Set<number>([...segs.keys(), ...tlRows.keys(), ...partials.map((p) => p.timeline)]);
  const totals = cat.totals();
  return {
    repository: {
      url: repoUrl,
      systemIdentifier: repo?.system_identifier ?? null,
      pgMajor: repo?.pg_major ?? null,
      walSegmentSize: repo?.wal_segment_size ?? null,
      createdAt: repo?.created_at ?? null,
    },
    catalog: cat.path,
    timelines: [...tls]
      .sort((a, b) => a - b)
      .map((tl) => {
        const stretches = segs.get(tl) ?? [];
        const t = tlRows.get(tl);
        return {
          timeline: tl,
          parent: t?.parent ?? null,
          switchpoint: t ? formatLsn(t.switchpoint) : null,
          segments: stretches.reduce((n, [a, b]) => n + b - a + 1, 0),
          ...segmentRuns(stretches, tl, segSize),
          partial: partials.filter((p) => p.timeline === tl).map((p) => p.name),
        };
      }),
    historyFiles: cat.walFiles('history').map((h) => h.name),
    backups: listBackups(cat),
    totals: { files: totals.files, rawBytes: totals.rawBytes, storedBytes: totals.storedBytes },
    lastPush: totals.lastPush,
    refusals: cat.refusals().filter(stillReady),
  };
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function renderInfo(r: InfoReport): string {
  const out: string[] = [];
  out.push(`repository  ${r.repository.url}`);
  if (r.repository.systemIdentifier) {
    out.push(
      `cluster     system identifier ${r.repository.systemIdentifier}, PostgreSQL ${r.repository.pgMajor}, ${r.repository.walSegmentSize! / 1048576} MiB segments`,
    );
  } else {
    out.push('cluster     (no segment archived yet)');
  }
  out.push(`catalog     ${r.catalog}`);
  const ratio = r.totals.rawBytes > 0 ? ` (${((100 * r.totals.storedBytes) / r.totals.rawBytes).toFixed(1)}% of ${bytes(r.totals.rawBytes)})` : '';
  out.push(`archived    ${r.totals.files} files, ${bytes(r.totals.storedBytes)} stored${ratio}`);
  out.push(`last push   ${r.lastPush ? `${r.lastPush.name} at ${r.lastPush.at}` : 'never'}`);
  for (const x of r.refusals) {
    out.push(`REFUSED     ${x.name}: ${x.count} time(s) since ${x.firstAt}, last ${x.lastAt} (${x.code}): ${x.message}`);
  }
  for (const t of r.timelines) {
    out.push('');
    const from = t.parent !== null ? ` (branched from ${t.parent} at ${t.switchpoint})` : '';
    out.push(`timeline ${t.timeline}${from}: ${t.segments} segments`);
    for (const x of t.ranges) out.push(`  archived  ${x.first} .. ${x.last}  (${x.count})`);
    for (const g of t.gaps) out.push(`  MISSING   ${g.first} .. ${g.last}  (${g.count})`);
    for (const p of t.partial) out.push(`  partial   ${p}`);
  }
  if (r.backups.length > 0) {
    out.push('');
    out.push('backups');
    for (const b of r.backups) {
      const what = b.source === 'walship' ? `walship backup ${b.name}, ${b.status}` : `backup history file ${b.name}`;
      out.push(`  ${b.label || '-'}  start ${b.startLsn} (tl ${b.startTimeline})  stop ${b.stopLsn} (tl ${b.stopTimeline})  ${b.stopTime ?? ''}  [${what}]`);
    }
  }
  return out.join('\n') + '\n';
}

export const info: CommandDef = {
  name: 'info',
  define: (cmd) =>
    addSettingOptions(
      addSyncOption(
        cmd.description('show the repository identity, archived WAL per timeline with gaps, history files, backups').option('--json', 'print a JSON document (shape in docs/commands.md)'),
      ),
    ),
  async run(cfg, flags) {
    const ctx = await openArchiveContext(cfg);
    const stale = await syncFirst(ctx, flags);
    const { Catalog } = await import('../catalog/catalog.js');
    const report = Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) => buildInfo(cat, ctx.repoUrl));
    process.stdout.write(flags.json ? JSON.stringify(stale ? { ...report, stale } : report, null, 2) + '\n' : staleNote(stale) + renderInfo(report));
  },
};
