/** `walship drill`'s text report. */
import type { DrillReport } from './drill.js';

const s = (n: number | null) => (n === null ? '-' : `${n.toFixed(1)} s`);

export function renderDrill(r: DrillReport): string {
  const lines = [`walship drill: ${r.verdict.toUpperCase()}`];
  if (r.failure) lines.push(`  ${r.failure}`);
  lines.push(
    '',
    `backup:   ${r.backup.id} ("${r.backup.label}", completed ${r.backup.stopTime})`,
    `target:   ${r.target.type}${r.target.value !== null ? ` ${r.target.value}` : ''}${r.target.random ? ' (drawn at random from walship ranges)' : ''}, timeline ${r.target.timeline}`,
    `promised: ${r.promised.stop}`,
  );
  if (r.reached) {
    lines.push(`reached:  last transaction ${r.reached.lastXactTime ?? '(none)'}, WAL replayed to ${r.reached.replayLsn}, promoted to timeline ${r.reached.timeline}`);
  }
  lines.push('', 'checks:');
  for (const c of r.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}: ${c.detail}`);
  if (r.tables.length > 0) {
    lines.push('', 'rows per table:');
    for (const t of r.tables) lines.push(`  ${t.database}  ${t.table}  ${t.rows}`);
  }
  const wal = r.walReplayedBytes === null ? '' : `, ${(r.walReplayedBytes / 1048576).toFixed(1)} MiB of WAL`;
  lines.push(
    '',
    `recovery time on this host: restore ${s(r.durations.restore)} (${(r.restoredBytes / 1048576).toFixed(1)} MiB), replay ${s(r.durations.replay)}${wal}, checks ${s(r.durations.checks)}; total ${s(r.durations.total)}`,
    `recorded in the repository as ${r.key}`,
  );
  for (const d of r.leftoversRemoved) lines.push(`removed what a killed drill left: ${d}`);
  if (r.kept) {
    lines.push(
      `kept: the cluster is in ${r.kept.pgdata}${r.verdict === 'passed' ? `, running: psql -h ${r.kept.socketDir} -p ${r.kept.port}` : ''}`,
      `  when done: pg_ctl -D ${r.kept.pgdata} stop -m immediate; rm -rf ${r.kept.pgdata.replace(/\/data$/, '')}`,
    );
  }
  return lines.join('\n') + '\n';
}
