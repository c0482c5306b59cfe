/**
 * `walship status`, the judgement: the facts collected (status.ts) against the thresholds, to a
 * state in the Nagios convention (ok 0, warning 1, critical 2), each reason named; and the same
 * facts as Prometheus text-format metrics. Pure.
 */

export interface StatusThresholds {
  /** Seconds; the archive lag (now − the newest archived transaction) above which it warns / is critical. */
  archiveLagWarn: number;
  archiveLagCrit: number;
  /** Seconds since the newest restorable backup completed. */
  backupAgeWarn: number;
  backupAgeCrit: number;
  /** Seconds since the last verify. */
  verifyAgeWarn: number;
  /** Seconds since the last drill. */
  drillAgeWarn: number;
}

export interface StatusFacts {
  now: string;
  /** Why the catalog could not be brought up to date with the repository (null: it was). */
  stale: string | null;
  archiving: {
    lastArchived: { name: string; at: string } | null;
    /** now − the newest archived transaction's time, seconds (null: no transaction archived). */
    lagSeconds: number | null;
    newestXactTime: string | null;
    /** `.ready` files in the data directory's pg_wal (null: no --pgdata). */
    readySegments: number | null;
    refusals: { name: string; code: string; message: string; lastAt: string; count: number }[];
    /**
     * Segments archive-push dropped under push_queue_max that are not archived: how many, the
     * first and last, and how many lie after the newest restorable backup's start (those leave
     * the newest window with a hole until a backup is taken).
     */
    dropped: { count: number; first: string; last: string; firstAt: string; lastAt: string; afterNewestBackup: number } | null;
  };
  backups: {
    restorable: number;
    newest: { name: string; label: string; stopTime: string; ageSeconds: number; storedBytes: number | null } | null;
  };
  /** The newest window of each timeline that has one. */
  windows: { timeline: number; from: string | null; to: string | null; seconds: number | null }[];
  verify: { at: string; ageSeconds: number; full: boolean; problems: number } | null;
  /** The last walship drill (null: none recorded, or the repository could not be read). */
  drill: { at: string; ageSeconds: number; passed: boolean; backup: string; target: string; rtoSeconds: number; failure: string | null } | null;
  repository: { walFiles: number; walBytes: number; backupBytes: number };
}

export type State = 'ok' | 'warning' | 'critical';

export interface StatusReport extends StatusFacts {
  state: State;
  reasons: { level: 'warning' | 'critical'; what: string }[];
}

const dur = (s: number): string => (s < 120 ? `${Math.round(s)} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172800 ? `${(s / 3600).toFixed(1)} h` : `${(s / 86400).toFixed(1)} d`);

export function evaluate(f: StatusFacts, t: StatusThresholds): StatusReport {
  const reasons: StatusReport['reasons'] = [];
  const over = (value: number | null, warn: number, crit: number, what: (v: number) => string) => {
    if (value === null) return;
    if (value > crit) reasons.push({ level: 'critical', what: what(value) });
    else if (value > warn) reasons.push({ level: 'warning', what: what(value) });
  };
  if (f.stale) reasons.push({ level: 'warning', what: `the repository could not be read, this is the catalog as of its last sync: ${f.stale}` });
  for (const r of f.archiving.refusals) reasons.push({ level: 'critical', what: `archive-push refuses ${r.name} (${r.code}, ${r.count} time(s), last ${r.lastAt}): ${r.message}` });
  const dr = f.archiving.dropped;
  if (dr && dr.afterNewestBackup > 0) {
    reasons.push({
      level: 'critical',
      what: `push_queue_max dropped ${dr.afterNewestBackup} segment(s) since the newest backup (${dr.first}${dr.count > 1 ? `..${dr.last}` : ''}, ${dr.firstAt} to ${dr.lastAt}): WAL is missing; take a new backup once archiving works`,
    });
  }
  if (f.archiving.lagSeconds === null) reasons.push({ level: 'warning', what: 'no transaction is archived yet' });
  over(f.archiving.lagSeconds, t.archiveLagWarn, t.archiveLagCrit, (v) => `archive lag ${dur(v)} (newest archived transaction ${f.archiving.newestXactTime})`);
  if (f.backups.newest === null) reasons.push({ level: 'critical', what: 'no restorable backup' });
  else over(f.backups.newest.ageSeconds, t.backupAgeWarn, t.backupAgeCrit, (v) => `the newest restorable backup is ${dur(v)} old (${f.backups.newest!.name})`);
  // (Unknown, not "never", when the repository could not be read.)
  if (f.verify === null) {
    if (!f.stale) reasons.push({ level: 'warning', what: 'the repository was never verified (walship verify)' });
  } else {
    if (f.verify.problems > 0) reasons.push({ level: 'critical', what: `the last verify (${f.verify.at}) found ${f.verify.problems} damaged or missing object(s)` });
    if (f.verify.ageSeconds > t.verifyAgeWarn) reasons.push({ level: 'warning', what: `the last verify was ${dur(f.verify.ageSeconds)} ago` });
  }
  if (f.drill) {
    if (!f.drill.passed) reasons.push({ level: 'critical', what: `the last drill (${f.drill.at}, backup ${f.drill.backup}) failed: ${f.drill.failure ?? 'see its record'}` });
    if (f.drill.ageSeconds > t.drillAgeWarn) reasons.push({ level: 'warning', what: `the last drill was ${dur(f.drill.ageSeconds)} ago` });
  }
  const state: State = reasons.some((r) => r.level === 'critical') ? 'critical' : reasons.length > 0 ? 'warning' : 'ok';
  return { ...f, state, reasons };
}

export const STATE_CODE: Record<State, number> = { ok: 0, warning: 1, critical: 2 };

export function renderStatus(r: StatusReport): string {
  const a = r.archiving;
  const lines = [`walship status: ${r.state.toUpperCase()}`];
  for (const x of r.reasons) lines.push(`  ${x.level.toUpperCase()}: ${x.what}`);
  lines.push('');
  lines.push(`archiving   last archived ${a.lastArchived ? `${a.lastArchived.name} at ${a.lastArchived.at}` : 'nothing'}; lag ${a.lagSeconds === null ? 'unknown' : dur(a.lagSeconds)}` + (a.readySegments === null ? '' : `; ${a.readySegments} segment(s) .ready in pg_wal`));
  if (a.dropped) lines.push(`dropped     ${a.dropped.count} segment(s) by push_queue_max, ${a.dropped.first}${a.dropped.count > 1 ? `..${a.dropped.last}` : ''} (${a.dropped.firstAt} to ${a.dropped.lastAt}); ${a.dropped.afterNewestBackup} after the newest backup`);
  const b = r.backups.newest;
  lines.push(`backups     ${r.backups.restorable} restorable${b ? `; newest ${b.name} (${b.label}), completed ${b.stopTime}, ${dur(b.ageSeconds)} ago${b.storedBytes !== null ? `, ${(b.storedBytes / 1048576).toFixed(1)} MiB` : ''}` : ''}`);
  for (const w of r.windows) lines.push(`window      timeline ${w.timeline}: ${w.from ?? '?'} .. ${w.to ?? '?'}${w.seconds !== null ? ` (${dur(w.seconds)})` : ''}`);
  lines.push(`verify      ${r.verify ? `${r.verify.at}${r.verify.full ? ' (full)' : ''}, ${r.verify.problems} problem(s)` : r.stale ? 'unknown (the repository could not be read)' : 'never'}`);
  const d = r.drill;
  lines.push(
    `drill       ${d ? `${d.at}: ${d.passed ? 'passed' : 'FAILED'}, backup ${d.backup} to ${d.target}, recovery time ${dur(d.rtoSeconds)}` : r.stale ? 'unknown (the repository could not be read)' : 'never (walship drill)'}`,
  );
  lines.push(`repository  ${r.repository.walFiles} WAL file(s), ${(r.repository.walBytes / 1048576).toFixed(1)} MiB; backups ${(r.repository.backupBytes / 1048576).toFixed(1)} MiB`);
  return lines.join('\n') + '\n';
}

/** Text-format metrics (what node_exporter's textfile collector and Prometheus read). */
export function renderPrometheus(r: StatusReport): string {
  const out: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: [Record<string, string>, number | null][]) => {
    const present = samples.filter(([, v]) => v !== null && Number.isFinite(v));
    if (present.length === 0) return;
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of present) {
      const l = Object.entries(labels).map(([k, x]) => `${k}="${x.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
      out.push(`${name}${l.length ? `{${l.join(',')}}` : ''} ${v}`);
    }
  };
  const ts = (iso: string | null | undefined) => (iso ? Date.parse(iso) / 1000 : null);
  metric('walship_status', 'gauge', 'Health as walship status judges it: 0 ok, 1 warning, 2 critical.', [[{}, STATE_CODE[r.state]]]);
  metric('walship_archive_lag_seconds', 'gauge', 'Now minus the time of the newest archived transaction.', [[{}, r.archiving.lagSeconds]]);
  metric('walship_last_archived_timestamp_seconds', 'gauge', 'When the newest archived file was pushed.', [[{}, ts(r.archiving.lastArchived?.at)]]);
  metric('walship_ready_segments', 'gauge', 'Segments PostgreSQL has marked .ready and not yet seen archived.', [[{}, r.archiving.readySegments]]);
  metric('walship_push_refusals', 'gauge', 'Files archive-push refuses (PostgreSQL retries them; nothing newer is archived).', [[{}, r.archiving.refusals.length]]);
  metric('walship_dropped_segments', 'gauge', 'Segments archive-push acknowledged without archiving them (push_queue_max) that are not archived.', [[{}, r.archiving.dropped?.count ?? 0]]);
  metric('walship_restorable_backups', 'gauge', 'walship backups that can be restored.', [[{}, r.backups.restorable]]);
  metric('walship_last_backup_age_seconds', 'gauge', 'Seconds since the newest restorable backup completed.', [[{}, r.backups.newest?.ageSeconds ?? null]]);
  metric('walship_last_backup_size_bytes', 'gauge', 'Stored size of the newest restorable backup.', [[{}, r.backups.newest?.storedBytes ?? null]]);
  metric(
    'walship_recoverable_window_seconds',
    'gauge',
    'Length of the newest recoverable window of each timeline (time targets from its start to its end).',
    r.windows.map((w) => [{ timeline: String(w.timeline) }, w.seconds] as [Record<string, string>, number | null]),
  );
  metric(
    'walship_recoverable_window_start_timestamp_seconds',
    'gauge',
    'The earliest moment the newest recoverable window of each timeline reaches.',
    r.windows.map((w) => [{ timeline: String(w.timeline) }, ts(w.from)] as [Record<string, string>, number | null]),
  );
  metric('walship_last_verify_timestamp_seconds', 'gauge', 'When walship verify last ran.', [[{}, ts(r.verify?.at)]]);
  metric('walship_last_verify_problems', 'gauge', 'Damaged or missing objects the last verify found.', [[{}, r.verify?.problems ?? null]]);
  metric('walship_last_drill_timestamp_seconds', 'gauge', 'When the last walship drill finished.', [[{}, ts(r.drill?.at)]]);
  metric('walship_last_drill_success', 'gauge', 'Whether the last walship drill passed (1) or failed (0).', [[{}, r.drill ? (r.drill.passed ? 1 : 0) : null]]);
  metric('walship_last_drill_rto_seconds', 'gauge', 'The recovery time the last drill measured on its host: restore and replay, seconds.', [[{}, r.drill?.rtoSeconds ?? null]]);
  metric('walship_repository_bytes', 'gauge', 'Bytes stored in the repository, by kind.', [
    [{ kind: 'wal' }, r.repository.walBytes],
    [{ kind: 'backup' }, r.repository.backupBytes],
  ]);
  return out.join('\n') + '\n';
}
