/**
 * The agent and its client, on a real cluster whose archive_command is walship: the first call
 * starts the agent, and then it answers the server's calls; a call by hand with the server's own
 * settings is answered by it too, one with another repository or config file never is (node
 * answers it, with its own settings); an agent killed at random points during a backlog loses
 * nothing (calls fall back to node, a new agent starts); another OS user cannot reach it; an
 * agent of another build is not trusted; with WALSHIP_AGENT=off no agent starts. The background
 * pusher of a backlog runs in the agent; the catalog it indexes into is the file at its path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { WALSHIP_COMMAND, confString, otherUser, pgUser, walshipCommand } from './helpers/pg.js';
import { walship } from './helpers/walship.js';
import { startArchiving, type Archiving } from './helpers/archiving.js';
import { repoBackends, type RepoBackend } from './helpers/backends.js';
import { processAlive } from '../src/pid.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ANSWERED = /answered by the agent/;

describe.each(repoBackends())('walship agent ($name repository)', (backend: RepoBackend) => {
  let a: Archiving;
  let agentDir: string;
  /** The live process holding `dir/lock`, if any. */
  const lockHolder = (dir: string, lock: string): number | null => {
    try {
      const pid = (JSON.parse(readFileSync(join(dir, lock), 'utf8')) as { pid: number }).pid;
      return processAlive(pid) ? pid : null;
    } catch {
      return null;
    }
  };
  const agentPid = () => lockHolder(agentDir, 'agent.lock');
  const pusherPid = () => lockHolder(`${a.catalog}.readahead`, 'pusher.lock');
  /** archive_command: walship (at debug level, so that the server log says who answered each call), or `false` (a backlog grows). */
  const archiving = async (on: boolean) => {
    await a.primary.sql(`ALTER SYSTEM SET archive_command = ${on ? confString(walshipCommand(`archive-push %p ${a.settings} --log-level debug`)) : "'false'"}`);
    await a.primary.sql('SELECT pg_reload_conf()');
  };
  /** `n` new segments, each with `rows` rows; their names. */
  const newSegments = async (n: number, rows = 1000) => {
    const names: string[] = [];
    for (let i = 0; i < n; i++) {
      await a.primary.sql(`INSERT INTO t SELECT generate_series(1, ${rows})`);
      names.push(await a.primary.switchWal());
    }
    return names;
  };
  /** Until an agent holds the lock and answers on the socket (its hello). */
  const waitAgent = async () => {
    const hello = () =>
      new Promise<boolean>((resolve) => {
        const c = connect(join(agentDir, 'agent.sock'));
        c.once('data', () => {
          c.destroy();
          resolve(true);
        });
        c.once('error', () => resolve(false));
      });
    for (const deadline = Date.now() + 20_000; agentPid() === null || !(await hello()); await sleep(50)) {
      if (Date.now() > deadline) {
        const pid = agentPid();
        const state = pid ? readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').slice(0, 3).join(' ') + ' ' + readFileSync(`/proc/${pid}/cmdline`, 'utf8') : 'none';
        throw new Error(`no agent answers: ${readdirSync(agentDir).join(' ')}; holder ${pid} ${state}; lock ${readFileSync(join(agentDir, 'agent.lock'), 'utf8')}; log: ${readFileSync(join(agentDir, 'agent.log'), 'utf8')}; server: ${readFileSync(a.primary.logFile, 'utf8').split('\n').slice(-12).join('\n')}`);
      }
    }
  };
  /** A call in the data directory, as its user, through the installed command, in `env` (default: the test's own). */
  const call = (args: string[], env: Record<string, string> = {}, base: NodeJS.ProcessEnv = { ...process.env, ...a.env }) =>
    walship(args, { asUser: true, cwd: a.primary.dataDir, env: { ...base, ...env } });

  beforeAll(async () => {
    a = await startArchiving(backend, 'agent');
    agentDir = join(a.primary.baseDir, 'walship-agent.data');
    await archiving(true);
    await a.primary.sql('CREATE TABLE t (v int)');
  });
  afterAll(async () => {
    await a?.cleanup();
  });

  /** The agent's identity: the setting flags it was started with (its command line after --pgdata DIR). */
  const agentFlags = (pid: number) => {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    return argv.slice(argv.indexOf('--pgdata') + 2);
  };
  /** The installed command run exactly in `env` (the test helper adds WALSHIP_CONFIG). */
  const direct = (args: string[], env: NodeJS.ProcessEnv) =>
    new Promise<{ code: number; stderr: string }>((resolve) => {
      const c = spawn(WALSHIP_COMMAND, args, { cwd: a.primary.dataDir, env, uid: pgUser().uid, gid: pgUser().gid, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr!.on('data', (d) => (stderr += d));
      c.on('close', (code) => resolve({ code: code ?? -1, stderr }));
    });
  /** The environment it was started with: the server's (it forwards the same variables). */
  const agentEnv = (pid: number): NodeJS.ProcessEnv =>
    Object.fromEntries(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  const answeredInLog = () => (readFileSync(a.primary.logFile, 'utf8').match(/walship DEBUG \[archive-push\] answered by the agent/g) ?? []).length;

  it('is started by the first call and answers the server\'s next calls', async () => {
    await a.primary.sql('INSERT INTO t VALUES (1)');
    await a.primary.waitArchived(await a.primary.switchWal());
    await waitAgent();
    expect(readdirSync(agentDir).sort()).toEqual(['agent.lock', 'agent.log', 'agent.sock']);
    const before = answeredInLog();
    for (let i = 0; i < 3; i++) {
      await a.primary.sql(`INSERT INTO t VALUES (${i})`);
      await a.primary.waitArchived(await a.primary.switchWal());
    }
    expect(answeredInLog() - before).toBeGreaterThanOrEqual(3);
    expect(await a.primary.value('SELECT failed_count FROM pg_stat_archiver')).toBe('0');
  });

  it('indexes into the catalog at its path, also once that file was removed and made anew', async () => {
    await a.primary.waitArchived(await a.primary.switchWal());
    await waitAgent();
    // A push it answers, so that it has the catalog open.
    let before = answeredInLog();
    await a.primary.sql('INSERT INTO t VALUES (8)');
    await a.primary.waitArchived(await a.primary.switchWal());
    expect(answeredInLog()).toBeGreaterThan(before);
    const pid = agentPid();
    before = answeredInLog();
    for (const f of [a.catalog, `${a.catalog}-wal`, `${a.catalog}-shm`]) rmSync(f, { force: true });
    await a.primary.sql('INSERT INTO t VALUES (8)');
    const seg = await a.primary.switchWal();
    await a.primary.waitArchived(seg);
    expect(agentPid()).toBe(pid);
    expect(answeredInLog()).toBeGreaterThan(before);
    const db = new Database(a.catalog, { readonly: true });
    try {
      expect(db.prepare('SELECT name FROM wal_files WHERE name = ?').get(seg)).toEqual({ name: seg });
    } finally {
      db.close();
    }
  });

  it('answers a call by hand with its own settings, and never one with another repository or config file', async () => {
    await waitAgent();
    const pid = agentPid()!;
    const flags = agentFlags(pid);
    const env = agentEnv(pid);
    expect(flags).toContain('--log-level=debug');
    const seg = await a.primary.value('SELECT last_archived_wal FROM pg_stat_archiver');
    const same = await direct(['archive-fetch', seg, `${a.work}/fetched`, ...flags], env);
    expect(same.code, same.stderr).toBe(0);
    expect(same.stderr).toMatch(ANSWERED);
    // The test's own environment is another one: node answers.
    const mine = await call(['archive-fetch', seg, `${a.work}/fetched2`, ...flags]);
    expect(mine.code, mine.stderr).toBe(0);
    expect(mine.stderr).not.toMatch(ANSWERED);
    // Another repository: declined, and node answers with that repository (which this catalog does not index).
    const other = join(a.work, 'other-repo');
    const otherRepo = await call(['archive-fetch', seg, `${a.work}/x`, ...flags.map((f) => (f.startsWith('--repo=') ? `--repo=${other}` : f))], {}, env);
    expect(otherRepo.code).not.toBe(0);
    expect(otherRepo.stderr).not.toMatch(ANSWERED);
    expect(otherRepo.stderr).toMatch(/other-repo/);
    // The same flags and a config file: other settings, node answers with them.
    const conf = join(a.work, 'other.conf');
    writeFileSync(conf, `repo = '${other}'\n`);
    spawnSync('chown', [String(pgUser().uid), conf]);
    const withConf = await call(['archive-fetch', seg, `${a.work}/y`, ...flags.filter((f) => !f.startsWith('--repo=')), '--config', conf], {}, env);
    expect(withConf.code).not.toBe(0);
    expect(withConf.stderr).not.toMatch(ANSWERED);
    expect(withConf.stderr).toMatch(/other-repo/);
    // Another environment (a variable that is a setting): declined too.
    const otherEnv = await call(['archive-fetch', seg, `${a.work}/z`, ...flags], { WALSHIP_COMPRESS_LEVEL: '9' }, env);
    expect(otherEnv.code, otherEnv.stderr).toBe(0);
    expect(otherEnv.stderr).not.toMatch(ANSWERED);
    expect(agentPid()).toBe(pid);
  });

  it('loses nothing when killed at random points during a backlog; calls fall back to node and a new agent starts', async () => {
    const p = a.primary;
    const failedBefore = await p.value('SELECT failed_count FROM pg_stat_archiver');
    let kills = 0;
    const killer = (async () => {
      for (let i = 0; i < 6; i++) {
        await sleep(150 + Math.random() * 300);
        const pid = agentPid();
        if (pid) {
          process.kill(pid, 'SIGKILL');
          kills++;
        }
      }
    })();
    const names = await newSegments(12, 2000);
    await killer;
    await p.waitArchived(names[names.length - 1]!, 120_000);
    const info = JSON.parse((await a.run(['info', '--json'])).stdout);
    const tl = info.timelines.find((t: { timeline: number }) => t.timeline === 1);
    expect(tl.gaps).toEqual([]);
    const archived = await backend.listWalNames();
    for (const n of names) expect(archived, n).toContain(n);
    expect(kills).toBeGreaterThan(0);
    // A call whose agent died before answering ran in node: PostgreSQL saw no failure.
    expect(await p.value('SELECT failed_count FROM pg_stat_archiver')).toBe(failedBefore);
    await p.sql('INSERT INTO t VALUES (7)');
    await p.waitArchived(await p.switchWal());
    await waitAgent();
  });

  it('runs the background pusher of a backlog itself: its pid holds the pusher, whose lines are in pusher.log', async () => {
    const p = a.primary;
    await p.waitArchived(await p.switchWal());
    await waitAgent();
    // Agents that calls in node started at once (the test before killed several) settle on one,
    // the later: the same pid for a few of their one-second socket checks.
    let pid = agentPid();
    for (const deadline = Date.now() + 20_000; ; ) {
      await sleep(2500);
      const now = agentPid();
      if (now !== null && now === pid) break;
      if (Date.now() > deadline) throw new Error('no agent stays');
      pid = now;
    }
    await waitAgent();
    // No pusher left from the tests before (a detached one started while the agent was down).
    for (const deadline = Date.now() + 30_000; pusherPid() !== null; await sleep(100)) if (Date.now() > deadline) throw new Error('a pusher is still running');
    // A backlog: archiving fails while segments are made, then walship is back.
    await archiving(false);
    const names = await newSegments(5);
    await archiving(true);
    await p.waitArchived(names[names.length - 1]!, 120_000);
    const log = readFileSync(join(`${a.catalog}.readahead`, 'pusher.log'), 'utf8');
    expect(log).toMatch(new RegExp(`background pusher started .*pid=${pid!}(\\s|$)`, 'm'));
    for (const n of names) expect(log).toMatch(new RegExp(`archived file=${n} `));
    expect(agentPid()).toBe(pid);
    const archived = await backend.listWalNames();
    for (const n of names) expect(archived, n).toContain(n);
  });

  it('when the first call of a backlog runs in node, the agent it starts runs the pusher from then on (no pusher of its own)', async () => {
    const p = a.primary;
    // No agent and no pusher (the pusher of the test before pushes ahead what it sees), then a
    // backlog made while archiving is off.
    await archiving(false);
    for (const deadline = Date.now() + 30_000; agentPid() !== null || pusherPid() !== null; await sleep(200)) {
      const agent = agentPid();
      if (agent !== null) process.kill(agent, 'SIGTERM');
      if (Date.now() > deadline) throw new Error('an agent or a pusher is still running');
    }
    const names = await newSegments(6);
    await archiving(true);
    await p.waitArchived(names[names.length - 1]!, 120_000);
    // (Each pusher begins its log afresh.)
    const log = readFileSync(join(`${a.catalog}.readahead`, 'pusher.log'), 'utf8');
    const started = [...log.matchAll(/background pusher started .*pid=(\d+)/g)].map((m) => Number(m[1]));
    expect(started.length, log).toBeGreaterThan(0);
    // Every pusher was an agent's: one handed the pusher by the first call (its --push-ahead), or one answering calls.
    for (const pid of started) {
      const cmdline = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
      expect(cmdline.split('\0'), `pusher ${pid}`).toContain('agent');
    }
    expect(readFileSync(join(agentDir, 'agent.log'), 'utf8')).toMatch(/agent listening/);
    const archived = await backend.listWalNames();
    for (const n of names) expect(archived, n).toContain(n);
  });

  it('cannot be reached by another OS user, and an agent of another build is not trusted', async () => {
    await waitAgent();
    const other = otherUser();
    const probe = spawnSync(process.execPath, ['-e', `require('net').connect(${JSON.stringify(join(agentDir, 'agent.sock'))}).on('error', (e) => { console.log(e.code); process.exit(0) }).on('connect', () => { console.log('connected'); process.exit(0) })`], {
      uid: other.uid,
      gid: other.gid,
      encoding: 'utf8',
    });
    expect(probe.stdout.trim()).toBe('EACCES');
    // A stand-in of another build on the agent's socket: the client does not send it the call.
    const pid = agentPid()!;
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50 && processAlive(pid); i++) await sleep(20);
    const script = join(a.work, 'fake-agent.cjs');
    writeFileSync(
      script,
      `const net = require('net'); const fs = require('fs'); const p = ${JSON.stringify(join(agentDir, 'agent.sock'))};
       fs.rmSync(p, { force: true });
       fs.writeFileSync(${JSON.stringify(join(agentDir, 'agent.lock'))}, JSON.stringify({ pid: process.pid }));
       const hello = Buffer.from('WSA1 0000000000000000'); const len = Buffer.alloc(4); len.writeUInt32LE(hello.length);
       net.createServer((c) => { c.on('error', () => {}); c.write(Buffer.concat([len, hello])); c.on('data', () => fs.appendFileSync(p + '.got', 'x')); }).listen(p, () => console.log('ready'));
       setInterval(() => { const t = new Date(); fs.utimesSync(${JSON.stringify(join(agentDir, 'agent.lock'))}, t, t); }, 500);`,
    );
    spawnSync('chown', [`${pgUser().uid}`, script]);
    const fake = spawn(process.execPath, [script], { uid: pgUser().uid, gid: pgUser().gid, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve) => fake.stdout!.once('data', () => resolve()));
      const seg = await a.primary.value('SELECT last_archived_wal FROM pg_stat_archiver');
      const r = await call(['archive-fetch', seg, `${a.work}/from-node`, `--repo=${a.repo}`, `--catalog=${a.catalog}`, '--log-level=debug']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(ANSWERED);
      expect(existsSync(join(agentDir, 'agent.sock.got'))).toBe(false);
    } finally {
      fake.kill('SIGKILL');
    }
  });

  it('with WALSHIP_AGENT=off, no agent starts and every call runs in node', async () => {
    const r = await walship(['archive-fetch', '000000010000000000000099', `${a.work}/none`, `--repo=${a.repo}`, `--catalog=${a.catalog}`], {
      asUser: true,
      cwd: a.primary.dataDir,
      env: { ...a.env, WALSHIP_AGENT: 'off', WALSHIP_LOG_LEVEL: 'debug' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(ANSWERED);
    expect(WALSHIP_COMMAND).toMatch(/bin\/walship$/);
  });
});
