/**
 * walship drill on a real cluster archiving into a filesystem repository: drills that pass (to
 * the end of the archive, to a time, to a moment drawn from ranges) with the reached point
 * checked against the plan and against the server itself; a failing user check and a damaged
 * backup piece, each recorded as a failed drill that turns status critical; a target the plan
 * refuses (nothing done); a killed drill whose server and directory the next drill removes;
 * --keep; no room; root refused. The throwaway servers are real PostgreSQL, recovering through
 * walship archive-fetch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { WALSHIP_COMMAND, clientBin, pgBinDir, pgUser, removeTempDir, userTempDir } from './helpers/pg.js';
import { walship } from './helpers/walship.js';
import { isoToMicros } from '../src/time.js';
import { processAlive } from '../src/pid.js';
import { startArchiving, type Archiving } from './helpers/archiving.js';
import { fsBackend } from './helpers/backends.js';

interface Drill {
  verdict: string;
  failure: string | null;
  key: string;
  target: { type: string; value: string | null; timeline: number; random: boolean };
  promised: { timeline: number; lastXact: { xid: number; time: string } | null; exact: boolean };
  reached: { timeline: number; parentTimeline: number; lastXactTime: string | null } | null;
  durations: { restore: number; replay: number | null; total: number };
  walReplayedBytes: number | null;
  amcheck: string;
  tables: { database: string; table: string; rows: number }[];
  checks: { name: string; ok: boolean; detail: string }[];
  kept: { pgdata: string; socketDir: string; port: number } | null;
  leftoversRemoved: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = processAlive;

describe('walship drill (filesystem repository)', () => {
  let a: Archiving;
  let work: string;
  let backupId: string;
  let firstBackup: string;
  let between: string;
  const drill = async (args: string[]) => {
    const r = await a.run(['drill', '--json', '--workdir', work, ...args]);
    return { code: r.code, doc: r.stdout ? (JSON.parse(r.stdout) as Drill) : null, stderr: r.stderr };
  };
  const scratchDirs = () => readdirSync(work).filter((n) => n.startsWith('walship-drill-'));

  beforeAll(async () => {
    a = await startArchiving(fsBackend(), 'drill');
    work = userTempDir('drill-work');
    const p = a.primary;
    await p.sql('CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL); INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 5000) g;');
    const b1 = await a.run(['backup', '--json'], a.pgEnv());
    expect(b1.code, b1.stderr).toBe(0);
    firstBackup = JSON.parse(b1.stdout).id;
    await p.sql('CREATE TABLE marks (id int PRIMARY KEY); INSERT INTO marks VALUES (1);');
    const b2 = await a.run(['backup', '--json'], a.pgEnv());
    expect(b2.code, b2.stderr).toBe(0);
    backupId = JSON.parse(b2.stdout).id;
    await p.sql('INSERT INTO marks VALUES (2)');
    await sleep(1100);
    between = await p.value("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    await sleep(1100);
    await p.sql('INSERT INTO marks VALUES (3); UPDATE accounts SET balance = balance + 1 WHERE id <= 10;');
    await p.waitArchived(await p.switchWal());
  });
  afterAll(async () => {
    await removeTempDir(work);
    await a?.cleanup();
  });

  it('passes to the end of the archive: the plan\'s last transaction reached, every table counted, user checks true, recorded, status sees it', async () => {
    const sql = join(work, 'checks.sql');
    writeFileSync(sql, "SELECT count(*) = 3 FROM marks;\nSELECT sum(balance) = 500010 FROM accounts;\n");
    chownSync(sql, pgUser().uid, pgUser().gid);
    const r = await drill(['--check-sql', sql]);
    expect(r.code, r.stderr).toBe(0);
    const d = r.doc!;
    expect(d.verdict).toBe('passed');
    expect(d.target).toMatchObject({ type: 'latest', timeline: 1, random: false });
    // Reached what the plan promised, and that is the server's own last commit.
    expect(d.reached).toMatchObject({ parentTimeline: 1, timeline: 2 });
    expect(d.promised.lastXact).not.toBeNull();
    expect(Date.parse(d.reached!.lastXactTime!)).toBeGreaterThanOrEqual(Date.parse(d.promised.lastXact!.time));
    expect(d.checks.map((c) => [c.name, c.ok])).toEqual([
      ['timeline', true],
      ['last transaction', true],
      ['pg_amcheck', true],
      ['read', true],
      ['check-sql #1', true],
      ['check-sql #2', true],
    ]);
    expect(d.amcheck).toBe('passed');
    expect(d.tables).toEqual(expect.arrayContaining([
      { database: 'postgres', table: 'public.accounts', rows: 5000 },
      { database: 'postgres', table: 'public.marks', rows: 3 },
    ]));
    expect(d.durations.restore).toBeGreaterThan(0);
    expect(d.durations.replay).toBeGreaterThan(0);
    expect(d.walReplayedBytes).toBeGreaterThan(0);
    // Cleaned up, recorded in the repository.
    expect(scratchDirs()).toEqual([]);
    expect(JSON.parse(readFileSync(join(a.repo, d.key), 'utf8'))).toMatchObject({ verdict: 'passed', backup: { id: backupId } });
    const s = await walship(['status', '--json', '--repo', a.repo, '--catalog', a.catalog], { env: a.env, asUser: true });
    expect(JSON.parse(s.stdout).drill).toMatchObject({ passed: true, backup: backupId, target: 'latest' });
    const prom = await walship(['status', '--prometheus', '--repo', a.repo, '--catalog', a.catalog], { env: a.env, asUser: true });
    expect(prom.stdout).toMatch(/\nwalship_last_drill_success 1\n/);
    expect(prom.stdout).toMatch(/\nwalship_last_drill_rto_seconds \d/);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: prom.stdout, encoding: 'utf8' });
    if (check.error) throw new Error(`promtool is needed for this test (apt-get install prometheus): ${check.error.message}`);
    expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
  });

  it('passes to a time, reaching exactly the transaction the plan names, and to a moment drawn from ranges', async () => {
    const plan = JSON.parse((await a.run(['plan', '--json', '--target-time', between])).stdout);
    const r = await drill(['--target-time', between]);
    expect(r.code, r.stderr + JSON.stringify(r.doc?.checks)).toBe(0);
    expect(r.doc!.promised).toMatchObject({ exact: true, lastXact: plan.replayed.lastXact });
    expect(isoToMicros(r.doc!.reached!.lastXactTime)).toBe(isoToMicros(plan.replayed.lastXact.time));
    expect(r.doc!.tables).toEqual(expect.arrayContaining([{ database: 'postgres', table: 'public.marks', rows: 2 }]));

    const rnd = await drill(['--random-target']);
    expect(rnd.code, rnd.stderr + JSON.stringify(rnd.doc?.checks)).toBe(0);
    expect(rnd.doc!.target).toMatchObject({ type: 'time', random: true });
    expect(scratchDirs()).toEqual([]);
  });

  it('fails, exit 13, when a user check is false: recorded, and status goes critical', async () => {
    const sql = join(work, 'false.sql');
    writeFileSync(sql, 'SELECT count(*) = 99 FROM marks;\n');
    chownSync(sql, pgUser().uid, pgUser().gid);
    const r = await drill(['--check-sql', sql]);
    expect(r.code).toBe(13);
    expect(r.doc!.verdict).toBe('failed');
    expect(r.doc!.failure).toMatch(/check-sql #1: returned false, not true/);
    const s = await walship(['status', '--json', '--repo', a.repo, '--catalog', a.catalog], { env: a.env, asUser: true });
    expect(s.code).toBe(2);
    expect(JSON.parse(s.stdout).reasons).toEqual(expect.arrayContaining([expect.objectContaining({ level: 'critical', what: expect.stringMatching(/^the last drill .* failed: check-sql #1/) })]));
    expect((await walship(['status', '--prometheus', '--repo', a.repo, '--catalog', a.catalog], { env: a.env, asUser: true })).stdout).toMatch(/\nwalship_last_drill_success 0\n/);
  });

  it('refuses a target the plan refuses, before anything is done (exit 9, nothing recorded)', async () => {
    const before = readdirSync(join(a.repo, 'drills')).length;
    const r = await drill(['--target-time', '2000-01-01T00:00:00Z']);
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(/before the earliest consistency point/);
    expect(readdirSync(join(a.repo, 'drills')).length).toBe(before);
    expect(scratchDirs()).toEqual([]);
  });

  it('removes what a killed drill left (its server too); leaves a kept one alone', async () => {
    const child = spawn(WALSHIP_COMMAND, ['drill', '--workdir', work, '--repo', a.repo, '--catalog', a.catalog], {
      env: { ...process.env, ...a.env, WALSHIP_CONFIG: '/dev/null' },
      uid: pgUser().uid,
      gid: pgUser().gid,
      stdio: 'ignore',
    });
    // Kill it while its server recovers.
    let pidFile = '';
    for (const deadline = Date.now() + 60_000; !pidFile; await sleep(50)) {
      if (Date.now() > deadline) throw new Error('the drill never started its server');
      for (const d of scratchDirs()) if (existsSync(join(work, d, 'data', 'postmaster.pid'))) pidFile = join(work, d, 'data', 'postmaster.pid');
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    const leftover = pidFile.replace(/\/data\/postmaster\.pid$/, '');
    const serverPid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    expect(alive(serverPid)).toBe(true);

    const kept = await drill(['--keep']);
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.doc!.leftoversRemoved).toEqual([leftover]);
    expect(existsSync(leftover)).toBe(false);
    for (let i = 0; i < 50 && alive(serverPid); i++) await sleep(100);
    expect(alive(serverPid)).toBe(false);
    // --keep: left running for inspection, and the next drill leaves it be.
    const k = kept.doc!.kept!;
    const psql = spawnSync(clientBin('psql'), ['-h', k.socketDir, '-p', String(k.port), '-U', 'postgres', '-Atc', 'SELECT count(*) FROM marks', 'postgres'], { uid: pgUser().uid, encoding: 'utf8' });
    expect(psql.stdout.trim()).toBe('3');
    const next = await drill(['--target', 'immediate', '--backup', firstBackup]);
    expect(next.code, next.stderr + JSON.stringify(next.doc?.checks)).toBe(0);
    expect(next.doc!.leftoversRemoved).toEqual([]);
    expect(existsSync(k.pgdata)).toBe(true);
    spawnSync(join(pgBinDir(), 'pg_ctl'), ['-D', k.pgdata, 'stop', '-m', 'immediate'], { uid: pgUser().uid });
    rmSync(dirname(k.pgdata), { recursive: true, force: true });
  });

  it('fails, exit 13 and recorded, on a damaged backup piece', async () => {
    const dir = join(a.repo, 'backups', firstBackup);
    const chunk = readdirSync(dir).find((n) => n.startsWith('chunk-'))!;
    const buf = readFileSync(join(dir, chunk));
    buf[Math.floor(buf.length / 2)] ^= 0xff;
    writeFileSync(join(dir, chunk), buf);
    const r = await drill(['--backup', firstBackup, '--target', 'immediate']);
    expect(r.code).toBe(13);
    expect(r.doc!.verdict).toBe('failed');
    expect(r.doc!.checks).toEqual([expect.objectContaining({ name: 'restore', ok: false })]);
    expect(r.doc!.failure).toMatch(new RegExp(`backup ${firstBackup}`));
    expect(scratchDirs()).toEqual([]);
  });

  it('refuses to run as root, and where there is no room (exit 14, the numbers named)', async () => {
    const root = await walship(['drill', '--repo', a.repo, '--catalog', a.catalog], { env: a.env });
    expect(root.code).toBe(2);
    expect(root.stderr).toMatch(/refuses to run as root/);
    const small = join(work, 'small');
    mkdirSync(small);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=4m,uid=${pgUser().uid},mode=0700`, 'tmpfs', small]);
    if (m.status !== 0) return; // no mounts here: the rest cannot be shown
    try {
      const r = await a.run(['drill', '--workdir', small]);
      expect(r.code).toBe(14);
      expect(r.stderr).toMatch(/has \d+ MiB free; the drill needs about \d+ MiB/);
      expect(readdirSync(small)).toEqual([]);
    } finally {
      spawnSync('umount', [small]);
    }
  });
});
