/**
 * walship status's judgement and its metrics: thresholds give warning and critical, each reason
 * named; the Prometheus text is what Prometheus itself parses (`promtool check metrics`, from
 * the prometheus package, which .ci/run installs).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { evaluate, renderPrometheus, renderStatus, type StatusFacts, type StatusThresholds } from '../src/status/health.js';

const T: StatusThresholds = { archiveLagWarn: 900, archiveLagCrit: 3600, backupAgeWarn: 26 * 3600, backupAgeCrit: 50 * 3600, verifyAgeWarn: 8 * 86400, drillAgeWarn: 8 * 86400 };

function facts(
  over: Partial<{ lag: number | null; backupAge: number | null; verify: StatusFacts['verify']; drill: StatusFacts['drill']; dropped: StatusFacts['archiving']['dropped']; refusals: StatusFacts['archiving']['refusals']; stale: string | null }> = {},
): StatusFacts {
  const o = { lag: 30, backupAge: 3600, verify: { at: '2026-12-01T00:00:00Z', ageSeconds: 3600, full: false, problems: 0 }, drill: null, dropped: null, refusals: [], stale: null, ...over };
  return {
    now: '2026-12-01T01:00:00Z',
    stale: o.stale,
    archiving: { lastArchived: { name: '000000010000000000000042', at: '2026-12-01T00:59:30Z' }, lagSeconds: o.lag, newestXactTime: '2026-12-01T00:59:30Z', readySegments: 2, refusals: o.refusals, dropped: o.dropped },
    backups: { restorable: o.backupAge === null ? 0 : 2, newest: o.backupAge === null ? null : { name: 'b2', label: 'nightly "2"', stopTime: '2026-12-01T00:00:00Z', ageSeconds: o.backupAge, storedBytes: 123456 } },
    windows: [
      { timeline: 1, from: '2026-11-30T00:00:00Z', to: '2026-12-01T00:59:30Z', seconds: 89970 },
      { timeline: 2, from: null, to: null, seconds: null },
    ],
    verify: o.verify,
    drill: o.drill,
    repository: { walFiles: 66, walBytes: 9_000_000, backupBytes: 3_000_000 },
  };
}

const DRILL = { at: '2026-11-30T12:00:00Z', ageSeconds: 13 * 3600, passed: true, backup: 'b2', target: 'latest', rtoSeconds: 42.5, failure: null };

describe('walship status', () => {
  it('is critical while segments push_queue_max dropped leave the newest window with a hole, and says so after a new backup', () => {
    const d = { count: 2, first: '000000010000000000000043', last: '000000010000000000000044', firstAt: '2026-12-01T00:10:00Z', lastAt: '2026-12-01T00:11:00Z', afterNewestBackup: 2 };
    const crit = evaluate(facts({ dropped: d }), T);
    expect(crit.state).toBe('critical');
    expect(crit.reasons[0]!.what).toBe(
      'push_queue_max dropped 2 segment(s) since the newest backup (000000010000000000000043..000000010000000000000044, 2026-12-01T00:10:00Z to 2026-12-01T00:11:00Z): WAL is missing; take a new backup once archiving works',
    );
    expect(renderPrometheus(crit)).toMatch(/\nwalship_dropped_segments 2\n/);
    const after = evaluate(facts({ dropped: { ...d, afterNewestBackup: 0 } }), T);
    expect(after.state).toBe('ok');
    expect(renderStatus(after)).toMatch(/\ndropped     2 segment\(s\) by push_queue_max, 000000010000000000000043\.\.000000010000000000000044 .*; 0 after the newest backup\n/);
    expect(renderPrometheus(evaluate(facts(), T))).toMatch(/\nwalship_dropped_segments 0\n/);
  });

  it('reports the last drill: nothing when none ran, critical when it failed, a warning when it is old', () => {
    expect(evaluate(facts({ drill: null }), T).state).toBe('ok');
    expect(evaluate(facts({ drill: DRILL }), T).state).toBe('ok');
    const failed = evaluate(facts({ drill: { ...DRILL, passed: false, failure: 'pg_amcheck: heap damaged' } }), T);
    expect(failed.reasons).toEqual([{ level: 'critical', what: 'the last drill (2026-11-30T12:00:00Z, backup b2) failed: pg_amcheck: heap damaged' }]);
    expect(evaluate(facts({ drill: { ...DRILL, ageSeconds: 9 * 86400 } }), T).reasons).toEqual([{ level: 'warning', what: 'the last drill was 9.0 d ago' }]);
    expect(renderStatus(evaluate(facts({ drill: DRILL }), T))).toMatch(/\ndrill       2026-11-30T12:00:00Z: passed, backup b2 to latest, recovery time 43 s\n/);
    const prom = renderPrometheus(evaluate(facts({ drill: DRILL }), T));
    expect(prom).toMatch(/\nwalship_last_drill_success 1\n/);
    expect(prom).toMatch(/\nwalship_last_drill_rto_seconds 42.5\n/);
    expect(renderPrometheus(evaluate(facts(), T))).not.toMatch(/walship_last_drill/);
  });

  it('is ok within every threshold, and names each reason outside one', () => {
    expect(evaluate(facts(), T)).toMatchObject({ state: 'ok', reasons: [] });
    expect(evaluate(facts({ lag: 1000 }), T).state).toBe('warning');
    const crit = evaluate(facts({ lag: 4000, backupAge: 60 * 3600 }), T);
    expect(crit.state).toBe('critical');
    expect(crit.reasons.map((r) => r.what)).toEqual([expect.stringMatching(/^archive lag 67 min/), expect.stringMatching(/^the newest restorable backup is 2.5 d old \(b2\)/)]);
    expect(evaluate(facts({ backupAge: null }), T).reasons).toEqual([{ level: 'critical', what: 'no restorable backup' }]);
    expect(evaluate(facts({ verify: null }), T).state).toBe('warning');
    expect(evaluate(facts({ verify: { at: '2026-11-30T00:00:00Z', ageSeconds: 9 * 86400, full: true, problems: 1 } }), T).reasons.map((r) => r.level)).toEqual(['critical', 'warning']);
    const refused = evaluate(facts({ refusals: [{ name: '000000010000000000000043', code: 'HISTORY_DIVERGED', message: 'diverged history', lastAt: '2026-12-01T00:59:00Z', count: 3 }] }), T);
    expect(refused.state).toBe('critical');
    expect(refused.reasons[0]!.what).toMatch(/archive-push refuses 000000010000000000000043 \(HISTORY_DIVERGED, 3 time\(s\)/);
    const stale = evaluate(facts({ stale: 'connection refused', verify: null }), T);
    expect(stale.state).toBe('warning');
    expect(stale.reasons.map((r) => r.what)).toEqual([expect.stringMatching(/^the repository could not be read, this is the catalog as of its last sync: connection refused/)]);
  });

  it('writes metrics Prometheus parses, with conventional names and units', () => {
    const text = renderPrometheus(evaluate(facts({ lag: 4000 }), T));
    expect(text).toContain('walship_status 2\n');
    expect(text).toContain('walship_archive_lag_seconds 4000\n');
    expect(text).toContain('walship_recoverable_window_seconds{timeline="1"} 89970\n');
    expect(text).not.toContain('timeline="2"'); // a window without times has no sample
    expect(text).toContain('walship_repository_bytes{kind="backup"} 3000000\n');
    expect(text).toContain(`walship_last_backup_age_seconds 3600\n`);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if (check.error) throw new Error(`promtool is needed for this test (apt-get install prometheus): ${check.error.message}`);
    expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
    expect(`${check.stdout}${check.stderr}`.trim()).toBe('');
  });
});
