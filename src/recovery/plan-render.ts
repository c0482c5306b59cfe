/**
 * A plan in words: the text `walship plan` prints, and the one-line refusal that plan, restore
 * and drill report when a target cannot be reached (plan.ts makes the plan).
 */
import type { Plan, Refusal, TargetOut } from './plan.js';

/** The one-line message for a refusal (what `walship plan` prints on stderr). */
export function refusalLine(r: Refusal): string {
  const alts = r.alternatives.slice(0, 4).map((a) => `${a.description}: ${a.args}`);
  const what = describeTargetOut(r.target);
  // Most reasons start with the target already.
  const reason = r.reason.startsWith(what) || r.reason.startsWith(`LSN ${r.target.value}`) ? r.reason : `cannot reach ${what}: ${r.reason}`;
  return `${reason}${alts.length ? `; nearest reachable: ${alts.join('; ')}` : ''}`;
}

function describeTargetOut(t: TargetOut): string {
  switch (t.type) {
    case 'time':
      return String(t.value);
    case 'name':
      return `restore point ${JSON.stringify(t.value)}`;
    case 'lsn':
      return `LSN ${t.value}`;
    case 'xid':
      return `transaction ${t.value}`;
    case 'immediate':
      return 'the consistency point of the newest backup';
    case 'latest':
      return 'the end of the archive';
  }
}

export function renderPlan(p: Plan): string {
  const out: string[] = [];
  const tv = p.target.value === null ? p.target.type : `${p.target.type} ${p.target.value}`;
  out.push(`target     ${tv}${p.target.type === 'time' || p.target.type === 'lsn' || p.target.type === 'xid' ? (p.target.inclusive ? ' (inclusive)' : ' (exclusive)') : ''} on timeline ${p.timeline}`);
  out.push(`backup     ${p.backup.label ? `${p.backup.label}  ` : ''}${p.backup.name}`);
  out.push(`           start ${p.backup.startLsn}, consistent at ${p.backup.stopLsn}${p.backup.consistentTime ? ` (${p.backup.consistentTime})` : ''}`);
  p.wal.segments.forEach((s, i) => out.push(`${i === 0 ? 'WAL        ' : '           '}${s.first} .. ${s.last}  (${s.count} segment${s.count > 1 ? 's' : ''}, timeline ${s.timeline})`));
  if (p.wal.historyFiles.length) out.push(`history    ${p.wal.historyFiles.join(' ')}`);
  out.push(`stop       ${p.stop.description}`);
  for (const n of p.notes) out.push(`note       ${n}`);
  out.push('');
  out.push('# postgresql.conf of the restored data directory (and an empty recovery.signal file):');
  out.push(...p.conf);
  return out.join('\n') + '\n';
}
