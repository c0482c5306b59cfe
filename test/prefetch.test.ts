/**
 * Fetch prefetch (src/archive/prefetch.ts): a real recovery from pg_basebackup with walship as
 * restore_command takes most segments from the spool, with the spool bounded and emptied when
 * recovery ends; then, through the CLI as PostgreSQL calls it: a file past the end of the archive
 * is still "not in the archive" (exit 1), a damaged spooled copy is never delivered, and a damaged
 * archived object is still a hard failure. Runs once per repository backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { PgCluster, confString, pgUser, removeTempDir, userTempDir, walshipCommand, writeUserFile } from './helpers/pg.js';
import { walship } from './helpers/walship.js';
import { repoBackends, type RepoBackend } from './helpers/backends.js';

const SEG = /^[0-9A-F]{24}$/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 30_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A thread's nice value (from its stat line). */
function niceOf(pid: number, tid: string | number): number {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}
/** Whether process `pid` is gone. */
function exited(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

/** The spool directories beside `base` (the default place, next to the data directory). */
const spoolsIn = (base: string) => readdirSync(base).filter((f) => f.startsWith('walship-spool-')).map((f) => join(base, f));
const spooledSegments = (spool: string) => (existsSync(spool) ? readdirSync(spool).filter((f) => SEG.test(f)) : []);

describe.each(repoBackends())('fetch prefetch ($name repository)', (backend: RepoBackend) => {
  let work: string;
  let repo: string;
  let env: Record<string, string>;
  let catalog: string;
  let settings: string;
  let primary: PgCluster;
  let restored: PgCluster | undefined;
  let backupDir: string;
  let segments: string[];
  let expected: string;

  beforeAll(async () => {
    work = userTempDir('prefetch');
    ({ repo, env } = await backend.setup(work));
    catalog = join(work, 'catalog', 'walship.db');
    settings = `--repo '${repo}' --catalog '${catalog}'`;
    primary = await PgCluster.create({
      walSegSizeMb: 1,
      conf: { archive_mode: 'on', archive_command: confString(walshipCommand(`archive-push %p ${settings}`)), timezone: "'UTC'" },
      env,
    });
    await primary.start();
    await primary.sql('CREATE TABLE t (id int primary key, v text)');
    backupDir = join(work, 'restored');
    mkdirSync(backupDir);
    chownSync(backupDir, pgUser().uid, pgUser().gid);
    await primary.baseBackup(join(backupDir, 'data'), 'prefetch');
    let last = '';
    for (let i = 0; i < 24; i++) {
      await primary.sql(`INSERT INTO t SELECT g, md5(g::text) FROM generate_series(${i * 3000 + 1}, ${(i + 1) * 3000}) g`);
      last = await primary.switchWal();
    }
    await primary.waitArchived(last, 90_000);
    expected = await primary.value("SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t");
    await primary.stop();
    segments = (await backend.listWalNames()).filter((n) => SEG.test(n)).sort();
  });
  /** The archived bytes of `name`, decoded from its object. */
  const original = async (name: string) => {
    const { decodeObject } = await import('../src/archive/envelope.js');
    return (await decodeObject((await backend.driver().get(`wal/${name.slice(0, 16)}/${name}.zst`))!)).raw;
  };
  afterAll(async () => {
    await restored?.destroy();
    await primary?.destroy();
    await backend.teardown?.();
    await removeTempDir(work);
  });

  it('recovers through the spool, within its bound, and empties it when recovery ends', async () => {
    const window = 4;
    restored = await PgCluster.create({
      baseDir: backupDir,
      noInit: true,
      conf: {
        archive_mode: 'off',
        restore_command: confString(
          walshipCommand(`archive-fetch %f %p ${settings} --fetch-prefetch 16 --spool-max-bytes ${window * 1024 * 1024} --log-level debug`),
        ),
      },
      env,
    });
    writeUserFile(join(restored.dataDir, 'recovery.signal'), '');
    let most = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const s of spoolsIn(backupDir)) most = Math.max(most, spooledSegments(s).length);
        await sleep(20);
      }
    })();
    await restored.start();
    await restored.waitPromoted();
    expect(await restored.value("SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t")).toBe(expected);

    const log = readFileSync(restored.logFile, 'utf8');
    const fromSpool = log.match(/delivered from the prefetch spool/g)?.length ?? 0;
    expect(fromSpool).toBeGreaterThanOrEqual(10);
    expect(log).not.toMatch(/spooled copy not used/);
    expect(log).toMatch(new RegExp(`restored log file "${segments[segments.length - 1]}" from archive`));

    // Never more than the window of segments in the spool; emptied once recovery stops asking.
    const [spool] = spoolsIn(backupDir);
    expect(spool).toBeDefined();
    await until('the prefetcher to exit', () => !existsSync(join(spool!, 'prefetch.lock')), 40_000);
    watching = false;
    await watcher;
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(window);
    expect(readdirSync(spool!).filter((f) => !f.startsWith('prefetch.'))).toEqual([]);
    expect(readFileSync(join(spool!, 'prefetch.log'), 'utf8')).toMatch(/recovery is not asking for more; prefetcher exits/);
  });

  it('keeps "not in the archive" and hard failures as they are, and never delivers a damaged spooled copy', async () => {
    const data = join(work, 'manual', 'data');
    mkdirSync(join(data, 'pg_wal'), { recursive: true });
    for (const d of [join(work, 'manual'), data, join(data, 'pg_wal')]) chownSync(d, pgUser().uid, pgUser().gid);
    const fetch = (name: string) =>
      walship(['archive-fetch', name, 'pg_wal/RECOVERYXLOG', '--repo', repo, '--catalog', catalog, '--fetch-prefetch', '3'], { env, cwd: data, asUser: true });
    const delivered = () => readFileSync(join(data, 'pg_wal', 'RECOVERYXLOG'));
    const key = (name: string) => `wal/${name.slice(0, 16)}/${name}.zst`;
    const k = 2;
    const s = segments;
    // Beyond the window of the first call: damaged before the prefetcher can reach it.
    const damagedLater = s[k + 5]!;
    const damagedBytes = (await backend.driver().get(key(damagedLater)))!;
    const flipped = Buffer.from(damagedBytes);
    flipped[flipped.length - 40] ^= 0x55;
    await backend.overwrite(key(damagedLater), flipped);

    try {
      const first = await fetch(s[k]!);
      expect(first.code, first.stderr).toBe(0);
      const [spool] = spoolsIn(join(work, 'manual'));
      expect(spool).toBeDefined();
      await until('the next segments to be spooled', () => existsSync(join(spool!, `${s[k + 1]}.meta`)) && existsSync(join(spool!, `${s[k + 2]}.meta`)));

      // A spooled copy damaged on disk (same size): not delivered; the repository's copy is.
      const p = join(spool!, s[k + 1]!);
      const bytes = readFileSync(p);
      bytes[bytes.length >> 1] ^= 0x01;
      writeFileSync(p, bytes);
      const second = await fetch(s[k + 1]!);
      expect(second.code, second.stderr).toBe(0);
      expect(second.stderr).toMatch(/spooled copy not used \(it changed since it was verified\)/);
      expect(sha(delivered())).toBe(sha(await original(s[k + 1]!)));

      // A good spooled copy: delivered by a rename, byte for byte.
      const third = await fetch(s[k + 2]!);
      expect(third.code, third.stderr).toBe(0);
      expect(third.stderr).toBe('');
      expect(delivered().equals(await original(s[k + 2]!))).toBe(true);

      // A copy spooled before the machine restarted (spooled files are not fsynced): not delivered.
      await until('the next segment to be spooled', () => existsSync(join(spool!, `${s[k + 3]}.meta`)));
      const metaPath = join(spool!, `${s[k + 3]}.meta`);
      writeFileSync(metaPath, readFileSync(metaPath, 'utf8').replace(/^boot=.*$/m, 'boot=an-earlier-boot'));
      const fourth = await fetch(s[k + 3]!);
      expect(fourth.code, fourth.stderr).toBe(0);
      expect(fourth.stderr).toMatch(/spooled copy not used \(it was written before the machine restarted\)/);
      expect(delivered().equals(await original(s[k + 3]!))).toBe(true);

      expect((await fetch(s[k + 4]!)).code).toBe(0);
      // The damaged object was never spooled, and is still reported as damaged.
      const bad = await fetch(damagedLater);
      expect(bad.code, bad.stderr).toBe(255);
      expect(bad.stderr).toMatch(/code=OBJECT_CORRUPT/);

      if (backend.name === 'filesystem') {
        // An object damaged after it was spooled is noticed too (one stat of the object file).
        await fetch(s[k + 6]!);
        await until('a segment to be spooled', () => existsSync(join(spool!, `${s[k + 7]}.meta`)));
        const obj = (await backend.driver().get(key(s[k + 7]!)))!;
        const broken = Buffer.from(obj);
        broken[broken.length - 40] ^= 0x55;
        await backend.overwrite(key(s[k + 7]!), broken);
        const r = await fetch(s[k + 7]!);
        expect(r.code, r.stderr).toBe(255);
        expect(r.stderr).toMatch(/code=OBJECT_CORRUPT/);
        await backend.overwrite(key(s[k + 7]!), obj);
      }

      // Past the end of the archive, with a live prefetcher and a full spool: still exit 1.
      const { segmentName, segNoFromLogSeg } = await import('../src/wal/names.js');
      const lastName = s[s.length - 1]!;
      const next = segmentName(1, segNoFromLogSeg(lastName.slice(8), 1024 * 1024) + 1, 1024 * 1024);
      const missing = await fetch(next);
      expect(missing.code, missing.stderr).toBe(1);
      expect(missing.stderr).toBe('');
      expect(existsSync(join(spool!, next))).toBe(false);
    } finally {
      await backend.overwrite(key(damagedLater), damagedBytes);
    }
  });
  it('delivers spooled segments through the agent with its settings, through node with any others, and hands every doubtful call to node', async () => {
    const dir = join(work, 'agent');
    const data = join(dir, 'data');
    mkdirSync(join(data, 'pg_wal'), { recursive: true });
    // A data directory, for the agent (the calls PostgreSQL makes run in one).
    writeFileSync(join(data, 'PG_VERSION'), '15\n');
    for (const d of [dir, data, join(data, 'pg_wal'), join(data, 'PG_VERSION')]) chownSync(d, pgUser().uid, pgUser().gid);
    const configFile = join(work, 'agent.conf');
    writeFileSync(configFile, 'fetch_prefetch = 3\n');
    const fetch = (name: string, more: Record<string, string> = {}) =>
      walship(['archive-fetch', name, 'pg_wal/RECOVERYXLOG', '--repo', repo, '--catalog', catalog, '--log-level', 'debug'], {
        env: { ...env, WALSHIP_CONFIG: configFile, ...more },
        cwd: data,
        asUser: true,
      });
    const delivered = () => readFileSync(join(data, 'pg_wal', 'RECOVERYXLOG'));
    const fromSpool = /delivered from the prefetch spool file=\S+ dest=\S+$/m;
    const byAgent = /answered by the agent/;
    const s = segments.slice(1);
    const spooled = (name: string) => until(`${name} to be spooled`, () => spoolsIn(dir).some((sp) => existsSync(join(sp, `${name}.meta`))));
    const expectDelivered = async (r: { code: number; stderr: string }, name: string, by?: 'agent' | 'node') => {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(fromSpool);
      if (by) expect(byAgent.test(r.stderr), `${name} by ${by}: ${r.stderr}`).toBe(by === 'agent');
      expect(r.stderr).not.toMatch(/ WARN | ERROR /);
      expect(delivered().equals(await original(name))).toBe(true);
    };

    // The first call runs in node: it fetches from the repository, starts the prefetcher and the agent.
    const first = await fetch(s[0]!);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).not.toMatch(byAgent);
    const [spool] = spoolsIn(dir);
    expect(spool).toBeDefined();
    await until('the agent to listen', () => existsSync(join(dir, 'walship-agent.data', 'agent.sock')));

    // The same settings: the agent moves the spooled file into place, drops its metadata and
    // tells the prefetcher where recovery is.
    await spooled(s[1]!);
    await expectDelivered(await fetch(s[1]!), s[1]!, 'agent');
    expect(existsSync(join(spool!, `${s[1]}.meta`))).toBe(false);
    expect(readFileSync(join(spool!, 'position'), 'utf8')).toBe(s[1]);

    // Another WALSHIP_* variable: other settings, so node answers...
    await spooled(s[2]!);
    await expectDelivered(await fetch(s[2]!, { WALSHIP_S3_MAX_RETRIES: '5' }), s[2]!, 'node');
    // ... and the agent still answers its own.
    await spooled(s[3]!);
    await expectDelivered(await fetch(s[3]!), s[3]!, 'agent');
    // Another flag value: node.
    await spooled(s[4]!);
    const otherFlag = await walship(['archive-fetch', s[4]!, 'pg_wal/RECOVERYXLOG', '--repo', repo, '--catalog', catalog, '--log-level=debug', '--s3-max-retries', '5'], {
      env: { ...env, WALSHIP_CONFIG: configFile },
      cwd: data,
      asUser: true,
    });
    await expectDelivered(otherFlag, s[4]!, 'node');
    // The config file rewritten (even with the same text): the agent declines (and exits), node reads it again.
    await spooled(s[5]!);
    writeFileSync(configFile, 'fetch_prefetch = 3\n');
    await expectDelivered(await fetch(s[5]!), s[5]!, 'node');
    await spooled(s[6]!);
    await expectDelivered(await fetch(s[6]!, { WALSHIP_S3_MAX_RETRIES: '5' }), s[6]!);

    // The prefetcher gone: node delivers the copy it left and starts a new one.
    await spooled(s[7]!);
    const pid = (JSON.parse(readFileSync(join(spool!, 'prefetch.lock'), 'utf8')) as { pid: number }).pid;
    // It works at nice 10, every thread of it, so that recovery's replay wins a contended core.
    for (const tid of readdirSync(`/proc/${pid}/task`)) expect(niceOf(pid, tid), `thread ${tid}`).toBe(10);
    process.kill(pid, 'SIGKILL');
    await until('the prefetcher to die', () => exited(pid));
    // Settings no agent runs with: node answers whether or not the call for s[6] has started an
    // agent with its own by now (such an agent would rightly answer a call with those).
    await expectDelivered(await fetch(s[7]!, { WALSHIP_S3_MAX_RETRIES: '6' }), s[7]!, 'node');
    let startedAt = 0;
    await until('a new prefetcher', () => {
      try {
        const now = JSON.parse(readFileSync(join(spool!, 'prefetch.lock'), 'utf8')) as { pid: number; startedAt: string };
        process.kill(now.pid, 0);
        startedAt = Date.parse(now.startedAt);
        return now.pid !== pid;
      } catch {
        return false;
      }
    });
    // Spooled by the new prefetcher (it fetches its whole window again, over what the killed one
    // left: a call while it replaces a file is handed to node, which is right but not the point here).
    await until(`${s[8]} to be spooled by the new prefetcher`, () => {
      try {
        return statSync(join(spool!, `${s[8]}.meta`)).mtimeMs >= startedAt;
      } catch {
        return false;
      }
    });
    await expectDelivered(await fetch(s[8]!, { WALSHIP_S3_MAX_RETRIES: '5' }), s[8]!);

    // Not a spooled segment (past the window): node, from the repository.
    const far = await fetch(s[13]!, { WALSHIP_S3_MAX_RETRIES: '5' });
    expect(far.code, far.stderr).toBe(0);
    expect(far.stderr).not.toMatch(/delivered from the prefetch spool/);
    expect(delivered().equals(await original(s[13]!))).toBe(true);
    // A file that is not a segment, and a malformed call: node's answers (history: exit 1 here).
    expect((await fetch('00000009.history', { WALSHIP_S3_MAX_RETRIES: '5' })).code).toBe(1);
    const bad = await walship(['archive-fetch', s[1]!, 'pg_wal/RECOVERYXLOG', '--repo'], { cwd: data, asUser: true });
    expect(bad.code).toBe(255);
    expect(bad.stderr).toMatch(/option '--repo' needs a value/);
  });

  it('runs the prefetcher in the agent when the agent answers the call: its fetching threads at nice 10, the agent\'s own at 0', async () => {
    const dir = join(work, 'agent-prefetch');
    const data = join(dir, 'data');
    mkdirSync(join(data, 'pg_wal'), { recursive: true });
    writeFileSync(join(data, 'PG_VERSION'), '15\n');
    for (const d of [dir, data, join(data, 'pg_wal'), join(data, 'PG_VERSION')]) chownSync(d, pgUser().uid, pgUser().gid);
    const fetch = (name: string, dest = 'pg_wal/RECOVERYXLOG') =>
      walship(['archive-fetch', name, dest, '--repo', repo, '--catalog', catalog, '--log-level', 'debug', '--fetch-prefetch', '3'], { env: { ...env, WALSHIP_CONFIG: '/dev/null' }, cwd: data, asUser: true });
    const s = segments.slice(1);
    // A fetch elsewhere than RECOVERYXLOG starts no prefetcher; run in node, it starts the agent.
    const first = await fetch(s[0]!, 'pg_wal/other');
    expect(first.code, first.stderr).toBe(0);
    const agentDir = join(dir, 'walship-agent.data');
    // It listens, then writes its lock.
    await until('the agent to listen', () => existsSync(join(agentDir, 'agent.sock')) && existsSync(join(agentDir, 'agent.lock')));
    const agentPid = (JSON.parse(readFileSync(join(agentDir, 'agent.lock'), 'utf8')) as { pid: number }).pid;
    const byAgent = await fetch(s[1]!);
    expect(byAgent.code, byAgent.stderr).toBe(0);
    expect(byAgent.stderr).toMatch(/answered by the agent/);
    const [spool] = spoolsIn(dir);
    expect(spool).toBeDefined();
    // The prefetcher is the agent: its lock names the agent's pid, and it spools the next segments.
    await until(`${s[2]} to be spooled`, () => existsSync(join(spool!, `${s[2]}.meta`)));
    expect((JSON.parse(readFileSync(join(spool!, 'prefetch.lock'), 'utf8')) as { pid: number }).pid).toBe(agentPid);
    expect(readFileSync(join(spool!, 'prefetch.log'), 'utf8')).toMatch(/prefetcher started/);
    expect(niceOf(agentPid, agentPid)).toBe(0);
    expect(readdirSync(`/proc/${agentPid}/task`).filter((t) => niceOf(agentPid, t) === 10).length).toBeGreaterThan(0);
    const next = await fetch(s[2]!);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/answered by the agent/);
    expect(next.stderr).toMatch(/delivered from the prefetch spool/);
    expect(readFileSync(join(data, 'pg_wal', 'RECOVERYXLOG')).equals(await original(s[2]!))).toBe(true);
    process.kill(agentPid, 'SIGTERM');
    await until('the agent to exit', () => exited(agentPid));
  });
});
