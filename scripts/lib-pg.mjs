// Shared by the scripts (demo, benchmarks): run PostgreSQL as an unprivileged user in a temp dir.
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, chmodSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The system's PostgreSQL server binaries (WALSHIP_PG_BIN, pg_config, the newest /usr/lib/postgresql/N), or null. */
export function systemPgBinDir() {
  if (process.env.WALSHIP_PG_BIN) return process.env.WALSHIP_PG_BIN;
  try {
    const d = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (existsSync(join(d, 'initdb'))) return d;
  } catch {}
  return newestSystemBin('initdb');
}

/** The bin directory of the newest /usr/lib/postgresql/N that has `prog`, or null. */
function newestSystemBin(prog) {
  const base = '/usr/lib/postgresql';
  const v = existsSync(base) ? readdirSync(base).filter((x) => existsSync(join(base, x, 'bin', prog))).sort((a, b) => b - a) : [];
  return v.length ? join(base, v[0], 'bin') : null;
}

export function pgBinDir() {
  const d = systemPgBinDir();
  if (!d) throw new Error('no PostgreSQL server binaries found (install postgresql, or set WALSHIP_PG_BIN)');
  return d;
}

/** A psql that runs: beside the server binaries, else in the newest /usr/lib/postgresql/N; null when there is none. */
function psqlBin(serverBin) {
  if (existsSync(join(serverBin, 'psql'))) return join(serverBin, 'psql');
  const bin = newestSystemBin('psql');
  return bin && join(bin, 'psql');
}

export function osUser() {
  if (process.getuid() !== 0) return { name: process.env.USER, uid: process.getuid(), gid: process.getgid() };
  let name = process.env.WALSHIP_PG_USER ?? 'postgres';
  if (spawnSync('id', ['-u', name]).status !== 0) {
    name = 'walship-test';
    if (spawnSync('id', ['-u', name]).status !== 0) execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/bin/sh', name]);
  }
  const id = (f) => Number(execFileSync('id', [f, name], { encoding: 'utf8' }).trim());
  return { name, uid: id('-u'), gid: id('-g') };
}

export function userDir(prefix) {
  const d = mkdtempSync(join(tmpdir(), `walship-${prefix}-`));
  const u = osUser();
  chmodSync(d, 0o755);
  chownSync(d, u.uid, u.gid);
  return d;
}

/** Runs a command as the cluster user; throws with its stderr on failure. */
export function asUser(cmd, args, opts = {}) {
  const u = osUser();
  const r = spawnSync(cmd, args, { uid: u.uid, gid: u.gid, encoding: 'utf8', cwd: opts.cwd ?? '/', env: { ...process.env, ...opts.env }, input: opts.input ?? '', maxBuffer: 1 << 28 });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r;
}

export class Cluster {
  constructor(base, port) {
    this.bin = pgBinDir();
    this.base = base;
    this.data = join(base, 'data');
    this.port = port ?? 20000 + Math.floor(Math.random() * 30000);
  }
  static init(base, opts = {}) {
    const c = new Cluster(base);
    const args = ['-D', c.data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'];
    if (opts.walSegSizeMb) args.push(`--wal-segsize=${opts.walSegSizeMb}`);
    asUser(join(c.bin, 'initdb'), args);
    c.conf({ listen_addresses: "''", port: c.port, unix_socket_directories: `'${base}'`, timezone: "'UTC'", ...opts.conf });
    return c;
  }
  conf(settings) {
    appendFileSync(join(this.data, 'postgresql.conf'), '\n' + Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
  }
  start() {
    asUser(join(this.bin, 'pg_ctl'), ['-D', this.data, '-l', join(this.base, 'server.log'), '-s', '-w', '-t', '300', 'start']);
  }
  stop(mode = 'fast') {
    asUser(join(this.bin, 'pg_ctl'), ['-D', this.data, '-s', '-w', '-t', '300', 'stop', '-m', mode], { allowFail: true });
  }
  psql(sql) {
    const psql = psqlBin(this.bin);
    // Without psql (an embedded server package on a machine without PostgreSQL), walship's own client library.
    if (!psql) return asUser(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'sql-once.mjs'), this.base, String(this.port)], { input: sql }).stdout.trim();
    return asUser(psql, ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', this.base, '-p', String(this.port), '-U', 'postgres', '-d', 'postgres', '-f', '-'], { input: sql }).stdout.trim();
  }
  pgbench(args) {
    return asUser(join(this.bin, 'pgbench'), ['-h', this.base, '-p', String(this.port), '-U', 'postgres', ...args, 'postgres']);
  }
}

export const confString = (s) => `'${s.replace(/'/g, "''")}'`;
