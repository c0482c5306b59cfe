/**
 * walship status on a real cluster archiving into a filesystem repository: a warning until the
 * repository is verified, ok once it is, warning and critical as the thresholds are crossed
 * (exit codes 1 and 2, the Nagios convention), the metrics file written atomically and parsed by
 * Prometheus's own promtool, a stale answer when the repository cannot be read, and "unknown"
 * (exit 3) when there is nothing to answer from.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pgUser } from './helpers/pg.js';
import { walship } from './helpers/walship.js';
import { startArchiving, type Archiving } from './helpers/archiving.js';
import { fsBackend } from './helpers/backends.js';

interface Report {
  state: string;
  reasons: { level: string; what: string }[];
  archiving: { readySegments: number | null; lastArchived: { name: string } | null; lagSeconds: number | null };
  backups: { restorable: number; newest: { name: string } | null };
  windows: { timeline: number; seconds: number | null }[];
  verify: { problems: number } | null;
}

describe('walship status (filesystem repository)', () => {
  let a: Archiving;
  const status = async (args: string[] = [], catalog?: string) => {
    const r = await walship(['status', '--json', '--pgdata', a.primary.dataDir, ...args, '--repo', a.repo, '--catalog', catalog ?? a.catalog], { env: a.env, asUser: true });
    return { code: r.code, doc: r.stdout ? (JSON.parse(r.stdout) as Report) : null, stderr: r.stderr };
  };

  beforeAll(async () => {
    a = await startArchiving(fsBackend(), 'status');
    await a.primary.sql('CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g');
    const b = await a.run(['backup'], a.pgEnv());
    expect(b.code, b.stderr).toBe(0);
    await a.primary.sql('INSERT INTO t SELECT generate_series(1001, 2000)');
    await a.primary.waitArchived(await a.primary.switchWal());
  });
  afterAll(async () => {
    await a?.cleanup();
  });

  it('warns until the repository is verified, then is ok; names what it sees', async () => {
    const before = await status();
    expect(before.code).toBe(1);
    expect(before.doc!.state).toBe('warning');
    expect(before.doc!.reasons).toEqual([{ level: 'warning', what: 'the repository was never verified (walship verify)' }]);
    expect((await a.run(['verify'])).code).toBe(0);
    const ok = await status();
    expect(ok.code, JSON.stringify(ok.doc?.reasons)).toBe(0);
    expect(ok.doc).toMatchObject({ state: 'ok', backups: { restorable: 1 }, verify: { problems: 0 } });
    expect(ok.doc!.archiving.readySegments).toBeGreaterThanOrEqual(0);
    expect(ok.doc!.archiving.lastArchived).not.toBeNull();
    expect(ok.doc!.windows.map((w) => w.timeline)).toEqual([1]);
    const text = await walship(['status', '--repo', a.repo, '--catalog', a.catalog], { env: a.env, asUser: true });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^walship status: OK\n/);
    expect(text.stdout).toMatch(/\nbackups     1 restorable; newest /);
  });

  it('goes warning, then critical, as thresholds are crossed (exit 1, 2)', async () => {
    await new Promise((r) => setTimeout(r, 1100));
    const warn = await status(['--status-backup-age-warn', '1s']);
    expect(warn.code).toBe(1);
    expect(warn.doc!.reasons[0]!.what).toMatch(/^the newest restorable backup is \d+ s old/);
    const crit = await status(['--status-backup-age-warn', '1s', '--status-backup-age-crit', '1s']);
    expect(crit.code).toBe(2);
    expect(crit.doc!.state).toBe('critical');
    expect((await status(['--status-archive-lag-warn', '1s', '--status-archive-lag-crit', '1s'])).code).toBe(2);
  });

  it('writes its metrics file atomically, in a format Prometheus parses', async () => {
    const dir = join(a.work, 'textfile');
    mkdirSync(dir);
    chownSync(dir, pgUser().uid, pgUser().gid);
    const file = join(dir, 'walship.prom');
    const r = await walship(['status', '--prometheus', '--prometheus-file', file, '--repo', a.repo, '--catalog', a.catalog], { env: a.env, asUser: true });
    expect(r.code).toBe(0);
    const text = readFileSync(file, 'utf8');
    expect(text).toBe(r.stdout);
    expect(statSync(file).mode & 0o777).toBe(0o644);
    expect(text).toMatch(/^walship_recoverable_window_seconds\{timeline="1"\} \d+/m);
    expect(text).toMatch(/^walship_status 0$/m);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if (check.error) throw new Error(`promtool is needed for this test (apt-get install prometheus): ${check.error.message}`);
    expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
  });

  it('answers from the catalog with a warning when the repository cannot be read; unknown (3) with nothing to answer from', async () => {
    chmodSync(a.repo, 0);
    try {
      const stale = await status();
      expect(stale.code).toBe(1);
      expect(stale.doc!.reasons[0]!.what).toMatch(/^the repository could not be read/);
      const dir = join(a.work, 'new-host');
      mkdirSync(dir);
      chownSync(dir, pgUser().uid, pgUser().gid);
      const none = await status([], join(dir, 'catalog.db'));
      expect(none.code).toBe(3);
      expect(none.stderr).toMatch(/knows nothing yet/);
    } finally {
      chmodSync(a.repo, 0o700);
    }
    const bad = await walship(['status', '--no-such-option'], { env: a.env, asUser: true });
    expect(bad.code).toBe(3);
  });
});
