/** `walship expire`'s text output: what goes, what stays, the windows that remain. */
import { renderRanges, table } from '../recovery/ranges.js';
import { formatDurationSetting as formatDuration } from '../config.js';
import type { ExpireReport } from './expire.js';

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

function policyLine(r: ExpireReport): string {
  const p = r.plan.policy;
  const parts = [];
  if (p.full !== null) parts.push(`retain_full = ${p.full}`);
  if (p.windowSeconds !== null) parts.push(`retain_window = ${formatDuration(p.windowSeconds)}`);
  parts.push(`retain_wal_before_oldest = ${p.walBeforeOldest ? 'on' : 'off'}`, `retain_incomplete = ${formatDuration(p.incompleteSeconds)}`);
  return parts.join(', ');
}

export function renderExpire(r: ExpireReport): string {
  const out: string[] = [];
  out.push(`${r.dryRun ? 'expire --dry-run (nothing is removed)' : 'expire'}: ${policyLine(r)}`);
  out.push('');
  const rows: string[][] = [['', 'WHAT', 'DETAIL', 'WHY']];
  for (const b of r.plan.kept) rows.push(['keep', `backup ${b.name}`, `${b.label}, consistent from ${b.consistentTime ?? '(not restorable)'}`, b.why]);
  for (const b of r.plan.removed) rows.push(['remove', `backup ${b.name}`, `${b.label}, ${b.status}, started ${b.startTime ?? '?'}`, b.why]);
  for (const w of r.wal) {
    const what = w.kind === 'segment' ? `${w.count} segment(s)` : `${w.count} ${w.kind === 'partial' ? '.partial' : '.backup'} file(s)`;
    rows.push(['remove', `WAL of timeline ${w.timeline}`, `${what} ${w.first === w.last ? w.first : `${w.first} .. ${w.last}`}, ${mib(w.bytes)}`, 'no kept window needs it']);
  }
  rows.push(['keep', 'timeline history files', 'all', 'PostgreSQL picks new timeline numbers from them']);
  out.push(...table(rows));
  const walBytes = r.wal.reduce((n, w) => n + w.bytes, 0);
  out.push('');
  out.push(`  ${r.plan.removed.length} backup(s) (${mib(r.backupBytes)}) and ${r.wal.reduce((n, w) => n + w.count, 0)} WAL file(s) (${mib(walBytes)}) ${r.dryRun ? 'would go' : 'go'}`);
  for (const n of r.plan.notes) out.push(`  note: ${n}`);
  if (r.removed) {
    out.push(
      `  removed ${r.removed.objects} object(s) in ${r.removed.seconds.toFixed(1)} s (${r.removed.requests} request(s)), after ${r.removed.recordSeconds.toFixed(1)} s storing the record and updating the catalog${r.removed.record ? `; record ${r.removed.record}` : ''}`,
    );
  }
  out.push('');
  out.push(r.dryRun ? 'windows that remain after it (walship ranges will show):' : 'windows that remain:');
  out.push(...renderRanges(r.plan.after).trimEnd().split('\n').map((l) => (l === '' ? '' : `  ${l}`)));
  return out.join('\n') + '\n';
}
