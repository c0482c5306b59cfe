/**
 * The drill's throwaway PostgreSQL: the backup's major's server programs, started on the restored
 * data directory with settings that keep it to itself whatever the backup's configuration says:
 * a unix socket in the scratch directory (0700) and no TCP, archive_mode off, its own
 * authentication files (trust, reachable only through that socket), no external pid file, no
 * synchronous standbys to wait for, its log in the scratch directory.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import { WalshipError, describeSystemError } from '../errors.js';
import { writeFileAtomic } from '../local/atomic-write.js';
import { processAlive, stopProcesses } from '../pid.js';

const PORT = 5432;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The major version of the `postgres` program in `dir`, or null when there is none. */
function majorIn(dir: string): number | null {
  const prog = join(dir, 'postgres');
  if (!existsSync(prog)) return null;
  try {
    const m = /\(PostgreSQL\)\s+(\d+)/.exec(execFileSync(prog, ['--version'], { encoding: 'utf8', timeout: 10_000 }));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The directory of `major`'s server programs: pg_bin when set (it must be that major), else the usual places. */
export function serverBinDir(major: number, configured: string | undefined): string {
  if (configured !== undefined) {
    const found = majorIn(configured);
    if (found === null) throw new WalshipError('USAGE', `pg_bin ${configured} holds no PostgreSQL server program (postgres)`);
    if (found !== major) throw new WalshipError('USAGE', `pg_bin ${configured} holds PostgreSQL ${found}; the backup is of PostgreSQL ${major}: set pg_bin to ${major}'s programs`);
    return configured;
  }
  const candidates: string[] = [];
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    /* no pg_config on the PATH */
  }
  candidates.push(`/usr/lib/postgresql/${major}/bin`, `/usr/pgsql-${major}/bin`);
  for (const dir of candidates) if (majorIn(dir) === major) return dir;
  throw new WalshipError('USAGE', `no PostgreSQL ${major} server programs found (looked in ${candidates.join(', ')}): install them or set pg_bin`);
}

/** pg_amcheck of the server's major: from its directory, else the system's directory of that major; null when neither has one. */
export function amcheckProgram(binDir: string, major: number): string | null {
  for (const dir of [binDir, `/usr/lib/postgresql/${major}/bin`, `/usr/pgsql-${major}/bin`]) {
    if (existsSync(join(dir, 'pg_amcheck'))) return join(dir, 'pg_amcheck');
  }
  return null;
}

export interface DrillServer {
  pid: number;
  socketDir: string;
  port: number;
  logPath: string;
  /** Set once the process has exited. */
  exited: { code: number | null; signal: string | null } | null;
}

/** Starts the server (detached: a killed drill leaves it for the next drill's cleanup). */
export async function startServer(binDir: string, major: number, pgdata: string, scratch: string): Promise<DrillServer> {
  const socketDir = join(scratch, 'socket');
  await fsp.mkdir(socketDir, { mode: 0o700 });
  const hba = join(scratch, 'pg_hba.conf');
  const ident = join(scratch, 'pg_ident.conf');
  await writeFileAtomic(hba, '# walship drill: only through the private socket\nlocal all all trust\n');
  await writeFileAtomic(ident, '');
  // PostgreSQL needs a postgresql.conf in the data directory; where it lived elsewhere (as on Debian), the backup has none.
  const conf = join(pgdata, 'postgresql.conf');
  if (!existsSync(conf)) await writeFileAtomic(conf, '# written by walship drill: the backed-up cluster kept its configuration outside the data directory\n');
  const settings: Record<string, string> = {
    data_directory: pgdata,
    listen_addresses: '',
    port: String(PORT),
    unix_socket_directories: socketDir,
    unix_socket_permissions: '0700',
    hba_file: hba,
    ident_file: ident,
    external_pid_file: '',
    archive_mode: 'off',
    hot_standby: 'off',
    synchronous_standby_names: '',
    logging_collector: 'off',
    ssl: 'off',
    huge_pages: 'try',
    statement_timeout: '0',
    default_transaction_read_only: 'off',
    cluster_name: 'walship-drill',
  };
  if (major <= 14) {
    settings.stats_temp_directory = join(scratch, 'stats_temp');
    await fsp.mkdir(settings.stats_temp_directory, { mode: 0o700 });
  }
  const args = ['-D', pgdata, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  const logPath = join(scratch, 'server.log');
  const fd = openSync(logPath, 'a', 0o600);
  try {
    const child = spawn(join(binDir, 'postgres'), args, { cwd: pgdata, detached: true, stdio: ['ignore', fd, fd] });
    const server: DrillServer = { pid: child.pid ?? -1, socketDir, port: PORT, logPath, exited: null };
    child.on('exit', (code, signal) => (server.exited = { code, signal }));
    child.on('error', (err) => (server.exited = { code: null, signal: describeSystemError(err) }));
    child.unref();
    return server;
  } finally {
    closeSync(fd);
  }
}

/** The server log's last lines (for a failure message). */
export function logTail(s: DrillServer, lines = 5): string {
  try {
    return readFileSync(s.logPath, 'utf8').trim().split('\n').slice(-lines).join(' | ');
  } catch {
    return '';
  }
}

/** A connection to the drill's server through its socket. */
export async function connectTo(s: DrillServer, user: string, database: string): Promise<Client> {
  const pg = (await import('pg')).default;
  const c = new pg.Client({ host: s.socketDir, port: s.port, user, database, application_name: 'walship drill' });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return c;
  } catch (err) {
    await c.end().catch(() => undefined);
    throw err;
  }
}

/** SQLSTATEs of a server that is not (yet) accepting connections. */
const NOT_YET = new Set(['57P03', 'ECONNREFUSED', 'ENOENT']);

/**
 * Waits until recovery has ended and the server accepts connections (hot_standby is off, so
 * that is the promotion), as the first of `roles` that exists. DRILL_FAILED when the server
 * exits, no role can connect, or `timeoutMs` passes.
 */
export async function waitPromoted(s: DrillServer, roles: string[], timeoutMs: number): Promise<{ client: Client; role: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (s.exited) {
      throw new WalshipError('DRILL_FAILED', `the restored server stopped during recovery (${s.exited.signal ?? `exit ${s.exited.code}`}): ${logTail(s)}`);
    }
    let lastRoleError = '';
    let notYet = false;
    for (const role of roles) {
      try {
        const client = await connectTo(s, role, 'postgres').catch((err: { code?: string }) =>
          err.code === '3D000' ? connectTo(s, role, 'template1') : Promise.reject(err),
        );
        const r = (await client.query('SELECT pg_is_in_recovery() AS rec')).rows[0] as { rec: boolean };
        if (!r.rec) return { client, role };
        await client.end().catch(() => undefined);
        notYet = true;
        break;
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (NOT_YET.has(code)) {
          notYet = true;
          break;
        }
        lastRoleError = `${role}: ${(err as Error).message}`;
      }
    }
    if (!notYet && lastRoleError) {
      throw new WalshipError('DRILL_FAILED', `cannot connect to the restored server as ${roles.join(' or ')} (${lastRoleError}): set pg_user to a superuser of the backed-up cluster`);
    }
    if (Date.now() > deadline) throw new WalshipError('DRILL_FAILED', `recovery did not end within ${Math.round(timeoutMs / 1000)} s: ${logTail(s)}`);
    await sleep(250);
  }
}

/** Stops the server running in `pgdata` (postmaster.pid), if any: immediate shutdown, then a kill. */
export async function stopServerIn(pgdata: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return;
  // Only our own throwaway server: its command line names this data directory.
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(pgdata)) return;
  } catch {
    return;
  }
  await stopProcesses([pid], 'SIGQUIT');
}
