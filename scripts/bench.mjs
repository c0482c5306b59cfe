#!/usr/bin/env node
// Benchmarks (not tests): walship against pgBackRest, barman-cloud and a plain cp, side by side on
// the same real PostgreSQL WAL (pgbench, 16 MiB segments), through PostgreSQL's own archiver and
// restore_command. Writes docs/benchmarks.md. Needs root (it installs the peers with apt-get and
// runs PostgreSQL as an unprivileged user) and a built walship (`npm run build`).
//
//   node scripts/bench.mjs            full run: a backlog of >= 256 segments (about 25 minutes here)
//   node scripts/bench.mjs --quick    64 segments, fewer repetitions (about 6 minutes)
//   options: --segments N  --out FILE  --only catchup,replay,load,latency,scanner  --keep
//            --load-secs N (the sustained load's length, default 60; --quick 20), --load-runs N (rounds, default 2)
//            --contenders walship-fs,pgbackrest-async,...  (ids in contenders(); default all)
//            --replay-runs N  (recovery replays per contender, median reported; default 3, quick 1)
//            --catchup-runs N (archive catch-ups per contender, each into a fresh repository,
//                              median reported; default 3, quick 1)
//
// Scenarios: archive catch-up (a backlog of .ready segments, timed from the reload that sets
// archive_command until pg_stat_archiver has archived all of it); recovery replay (a base backup
// taken before the backlog, recovered to the end of the archive through restore_command); the
// latency of single calls; WAL scanner throughput. PostgreSQL (and so every archive_command /
// restore_command) runs with a minimal environment, as a service would. The catalog's scenarios
// (rebuild, sync, ranges on a million segments) are scripts/bench-catalog.mjs's: their section of
// docs/benchmarks.md is kept as it is when this script rewrites the file.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { cpus, totalmem, release, loadavg } from 'node:os';
import {
  appendFileSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { osUser, pgBinDir, userDir, confString } from './lib-pg.mjs';
import { S3_KEY, startS3rver as startS3rverIn } from './lib-s3rver.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const WALSHIP = join(ROOT, 'bin', 'walship.js');
/** The command as installed (`walship` on PATH): archive-push and archive-fetch run through dist/walship-client, the agent's client, when built. */
const WALSHIP_CMD = join(ROOT, 'bin', 'walship');
const args = process.argv.slice(2);
const flag = (n) => args.includes(n);
const opt = (n, d) => (args.includes(n) ? args[args.indexOf(n) + 1] : d);
const QUICK = flag('--quick');
const TARGET = Number(opt('--segments', QUICK ? 64 : 256));
const OUT = opt('--out', join(ROOT, 'docs', 'benchmarks.md'));
const ONLY = opt('--only', 'catchup,replay,load,latency,scanner').split(',');
const CONTENDERS = opt('--contenders', '').split(',').filter(Boolean);
const LAT_N = QUICK ? 5 : 11;
const REPLAY_RUNS = Number(opt('--replay-runs', QUICK ? 1 : 3));
const CATCHUP_RUNS = Number(opt('--catchup-runs', QUICK ? 1 : 3));
const LOAD_SECS = Number(opt('--load-secs', QUICK ? 20 : 60));
const LOAD_RUNS = Number(opt('--load-runs', 2));
/** The sustained load's contenders (the others archive too slowly, or not through the same kind of store). */
const LOAD_IDS = ['walship-fs', 'pgbackrest-async'];
const SEG = /^[0-9A-F]{24}$/;
const startedAt = Date.now();

const log = (...m) => console.log(`[bench ${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)}s]`, ...m);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length - 1) * p))];

if (process.getuid() !== 0) {
  console.error('bench: run as root (it installs pgbackrest and barman-cli-cloud with apt-get and runs PostgreSQL as an unprivileged user)');
  process.exit(2);
}
if (!existsSync(join(ROOT, 'dist', 'walship.cjs'))) {
  console.error('bench: dist/ is missing: build first with `npm run build`');
  process.exit(2);
}

// ------------------------------------------------------------------------------------------------
// The peers, from Debian.
function installPeers() {
  const have = (c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0;
  if (have('pgbackrest') && have('barman-cloud-wal-archive')) return;
  log('installing pgbackrest and barman-cli-cloud (apt-get)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '-qq', 'pgbackrest', 'barman-cli-cloud'], { env, stdio: 'inherit' });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { env, stdio: 'inherit' });
    r = spawnSync('apt-get', ['install', '-y', '-qq', 'pgbackrest', 'barman-cli-cloud'], { env, stdio: 'inherit' });
  }
  if (r.status !== 0) throw new Error('apt-get install pgbackrest barman-cli-cloud failed');
}
installPeers();

const U = osUser();
const PGBIN = pgBinDir();
const WORK = userDir('bench');
const ownDir = (d) => {
  mkdirSync(d, { recursive: true });
  chownSync(d, U.uid, U.gid);
  return d;
};

// ------------------------------------------------------------------------------------------------
// S3: s3rver on 127.0.0.1 (lib-s3rver.mjs).
const BUCKET = 'bench';
const startS3rver = () => startS3rverIn(ROOT, join(WORK, 's3rver'), BUCKET);

// ------------------------------------------------------------------------------------------------
// Processes as the cluster user with a minimal environment (what a service manager gives).
let S3;
const baseEnv = () => ({
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: WORK,
  LANG: 'C.UTF-8',
  TZ: 'UTC',
  AWS_ACCESS_KEY_ID: S3_KEY,
  AWS_SECRET_ACCESS_KEY: S3_KEY,
  AWS_DEFAULT_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
});
function run(cmd, argv, o = {}) {
  const r = spawnSync(cmd, argv, {
    uid: U.uid,
    gid: U.gid,
    cwd: o.cwd ?? WORK,
    env: { ...baseEnv(), ...o.env },
    input: o.input ?? '',
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    timeout: o.timeout,
  });
  if (r.status !== 0 && !o.allowFail) throw new Error(`${cmd} ${argv.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout || '').slice(-2000)}`);
  return r;
}
/** Wall time of one command, in ms. */
function timed(cmd, argv, o = {}) {
  const t = process.hrtime.bigint();
  const r = run(cmd, argv, { ...o, allowFail: true });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== (o.expect ?? 0)) throw new Error(`${cmd} ${argv.join(' ')} exited ${r.status}: ${(r.stderr || '').slice(-1000)}`);
  return ms;
}

class Pg {
  constructor(base, data) {
    this.base = base;
    this.data = data ?? join(base, 'data');
    this.port = 20000 + Math.floor(Math.random() * 30000);
  }
  conf(settings) {
    appendFileSync(join(this.data, 'postgresql.conf'), '\n' + Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
  }
  get logFile() {
    return join(this.base, 'server.log');
  }
  start(wait = true) {
    run(join(PGBIN, 'pg_ctl'), ['-D', this.data, '-l', this.logFile, '-s', ...(wait ? ['-w', '-t', '600'] : ['-W']), 'start']);
  }
  stop(mode = 'fast') {
    run(join(PGBIN, 'pg_ctl'), ['-D', this.data, '-s', '-w', '-t', '600', 'stop', '-m', mode], { allowFail: true });
  }
  psql(sql) {
    return run(join(PGBIN, 'psql'), ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', this.base, '-p', String(this.port), '-U', 'postgres', '-d', 'postgres', '-f', '-'], {
      input: sql,
    }).stdout.trim();
  }
  pgbench(a) {
    return run(join(PGBIN, 'pgbench'), ['-h', this.base, '-p', String(this.port), '-U', 'postgres', ...a, 'postgres']);
  }
}

function versions() {
  const v = (cmd, a) => {
    try {
      return execFileSync(cmd, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n')[0];
    } catch {
      return 'n/a';
    }
  };
  const os = existsSync('/etc/os-release') ? (/PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '') : '';
  return {
    cpu: `${cpus()[0]?.model ?? '?'} × ${cpus().length}`,
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    os: `${os}, Linux ${release()}`,
    postgres: v(join(PGBIN, 'postgres'), ['--version']),
    node: process.version,
    walship: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version,
    pgbackrest: v('pgbackrest', ['version']),
    barman: v('barman-cloud-wal-archive', ['--version']),
    boto3: v('python3', ['-c', 'import boto3; print("boto3", boto3.__version__)']),
  };
}

// ------------------------------------------------------------------------------------------------
// The WAL: one cluster, a base backup, then pgbench until the backlog of .ready segments is big
// enough. archive_command stays empty (archiving configured but not running), so every segment
// waits as .ready; wal_keep_size keeps them after each contender has archived them, so the next
// contender gets the same backlog back (its .done files renamed to .ready while the server is down).
/**
 * A new cluster in `base`, started: archiving on with no archive_command yet (segments wait as
 * .ready), fsync and synchronous_commit off (pgbench writes WAL as fast as the machine lets it).
 */
function newCluster(base, settings) {
  const pg = new Pg(base);
  run(join(PGBIN, 'initdb'), ['-D', pg.data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  pg.conf({
    listen_addresses: "''",
    port: pg.port,
    unix_socket_directories: `'${base}'`,
    archive_mode: 'on',
    archive_command: "''",
    checkpoint_timeout: "'30s'",
    fsync: 'off',
    synchronous_commit: 'off',
    shared_buffers: "'256MB'",
    timezone: "'UTC'",
    logging_collector: 'off',
    ...settings,
  });
  pg.start();
  return pg;
}

async function makeWal() {
  const base = ownDir(join(WORK, 'source'));
  const pg = newCluster(base, { wal_keep_size: "'64GB'", max_wal_size: "'2GB'", max_wal_senders: 4 });
  const scale = QUICK ? 5 : 20;
  log(`pgbench -i -s ${scale}`);
  pg.pgbench(['-i', '-s', String(scale), '-q']);
  const backup = join(ownDir(join(WORK, 'backup')), 'data');
  run(join(PGBIN, 'pg_basebackup'), ['-h', base, '-p', String(pg.port), '-U', 'postgres', '-D', backup, '-X', 'stream', '-c', 'fast', '--no-sync', '-l', 'bench']);
  const status = join(pg.data, 'pg_wal', 'archive_status');
  const ready = () => readdirSync(status).filter((f) => f.endsWith('.ready') && SEG.test(f.slice(0, -6))).length;
  // Transactions first (TPC-B: small records and full-page images), then pgbench's own data
  // loads (-i: COPY and index builds) until the backlog is big enough; TPC-B alone writes WAL too
  // slowly on this machine to reach hundreds of segments in minutes.
  const before = new Set(readdirSync(status));
  log('pgbench TPC-B');
  pg.pgbench(['-c', '2', '-j', '2', '-n', '-M', 'prepared', '-T', QUICK ? '10' : '30']);
  const tpcb = readdirSync(status).filter((f) => !before.has(f) && f.endsWith('.ready')).map((f) => f.slice(0, -6)).filter((n) => SEG.test(n));
  while (ready() < TARGET) {
    log(`pgbench -i -s ${QUICK ? 10 : 40}: ${ready()} of ${TARGET} segments`);
    pg.pgbench(['-i', '-s', String(QUICK ? 10 : 40), '-q']);
  }
  pg.pgbench(['-c', '2', '-j', '2', '-n', '-M', 'prepared', '-T', '5']);
  pg.psql('SELECT pg_switch_wal(); CHECKPOINT;');
  await sleep(1000);
  const expected = pg.psql("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts");
  pg.stop();
  const names = readdirSync(status).filter((f) => f.endsWith('.ready')).map((f) => f.slice(0, -6)).sort();
  const segs = names.filter((n) => SEG.test(n));
  const bytes = segs.reduce((a, n) => a + statSync(join(pg.data, 'pg_wal', n)).size, 0);
  log(`backlog: ${segs.length} segments (${(bytes / 2 ** 20).toFixed(0)} MiB) and ${names.length - segs.length} other files`);
  return { pg, names, segs, bytes, backup, expected, tpcb };
}

/** Gives the whole backlog back to the archiver (server stopped). */
function resetBacklog(pg, names) {
  const status = join(pg.data, 'pg_wal', 'archive_status');
  for (const n of names) {
    const done = join(status, `${n}.done`);
    if (existsSync(done)) renameSync(done, join(status, `${n}.ready`));
  }
}

// ------------------------------------------------------------------------------------------------
// Contenders: how each archives and restores. push() starts a fresh repository (every catch-up
// run archives into an empty one); restore() reads the one the last push() made.
const node = process.execPath;
/**
 * Removes what an earlier run left in WORK under these names, after stopping a background pusher
 * that still works in it (a read-ahead state directory's lock names its pid).
 */
const fresh = (...names) => {
  for (const n of names) {
    const lock = join(WORK, n, 'pusher.lock');
    if (existsSync(lock)) {
      try {
        const { pid } = JSON.parse(readFileSync(lock, 'utf8'));
        process.kill(pid, 'SIGTERM');
        for (const deadline = Date.now() + 10_000; Date.now() < deadline; spawnSync('sleep', ['0.05'])) process.kill(pid, 0);
      } catch {
        /* gone */
      }
    }
  }
  for (const n of names) rmSync(join(WORK, n), { recursive: true, force: true });
};
/** The S3 prefix of walship's current run (a fresh prefix each run; s3rver's bucket stays). */
let s3Run = 0;
const walshipCmd = (a) => `${WALSHIP_CMD} ${a} --config /dev/null`;
function walshipS3Flags() {
  return `--s3-endpoint ${S3.endpoint} --s3-force-path-style on --s3-region us-east-1`;
}
function pgbConf(id, dataDir, async, pg) {
  const d = ownDir(join(WORK, `pgbackrest-${id}`));
  for (const s of ['log', 'lock', 'spool']) ownDir(join(d, s));
  const repo = ownDir(join(WORK, `pgbackrest-repo-${id.split('-')[0]}`));
  const conf = join(d, 'pgbackrest.conf');
  writeFileSync(
    conf,
    [
      '[global]',
      `repo1-path=${repo}`,
      'compress-type=zst',
      `log-path=${join(d, 'log')}`,
      `lock-path=${join(d, 'lock')}`,
      `spool-path=${join(d, 'spool')}`,
      'log-level-console=warn',
      'log-level-file=off',
      `archive-async=${async ? 'y' : 'n'}`,
      'process-max=2',
      // As deep as walship's default prefetch (16 segments of 16 MiB).
      'archive-get-queue-max=268435456',
      '',
      '[bench]',
      `pg1-path=${dataDir}`,
      ...(pg ? [`pg1-socket-path=${pg.base}`, `pg1-port=${pg.port}`, 'pg1-user=postgres'] : []),
      '',
    ].join('\n'),
  );
  chownSync(conf, U.uid, U.gid);
  return conf;
}

function contenders() {
  const all = [
    {
      id: 'walship-fs',
      label: 'walship, filesystem repo',
      push: () => {
        const repo = join(WORK, 'walship-fs-repo');
        const cat = join(WORK, 'walship-fs.db');
        fresh('walship-fs-repo', 'walship-fs.db', 'walship-fs.db-wal', 'walship-fs.db-shm', 'walship-fs.db.readahead');
        run(node, [WALSHIP, 'init', '--repo', repo, '--catalog', cat, '--config', '/dev/null']);
        return walshipCmd(`archive-push %p --repo ${repo} --catalog ${cat}`);
      },
      restore: () => walshipCmd(`archive-fetch %f %p --repo ${join(WORK, 'walship-fs-repo')} --catalog ${join(WORK, 'walship-fs.db')} --log-level debug`),
      stored: () => [join(WORK, 'walship-fs-repo')],
    },
    {
      id: 'walship-fs-noahead',
      label: 'walship, filesystem repo, read-ahead/prefetch off',
      push: () => {
        const repo = join(WORK, 'walship-fs0-repo');
        const cat = join(WORK, 'walship-fs0.db');
        fresh('walship-fs0-repo', 'walship-fs0.db', 'walship-fs0.db-wal', 'walship-fs0.db-shm', 'walship-fs0.db.readahead');
        run(node, [WALSHIP, 'init', '--repo', repo, '--catalog', cat, '--config', '/dev/null']);
        return walshipCmd(`archive-push %p --repo ${repo} --catalog ${cat} --push-readahead 0`);
      },
      restore: () => walshipCmd(`archive-fetch %f %p --repo ${join(WORK, 'walship-fs0-repo')} --catalog ${join(WORK, 'walship-fs0.db')} --fetch-prefetch 0`),
      stored: () => [join(WORK, 'walship-fs0-repo')],
    },
    {
      id: 'walship-s3',
      label: 'walship, S3 repo (s3rver)',
      push: () => {
        s3Run++;
        fresh('walship-s3.db', 'walship-s3.db-wal', 'walship-s3.db-shm', 'walship-s3.db.readahead');
        return walshipCmd(`archive-push %p --repo s3://${BUCKET}/walship-${s3Run} --catalog ${join(WORK, 'walship-s3.db')} ${walshipS3Flags()}`);
      },
      restore: () => walshipCmd(`archive-fetch %f %p --repo s3://${BUCKET}/walship-${s3Run} --catalog ${join(WORK, 'walship-s3.db')} ${walshipS3Flags()} --log-level debug`),
      stored: () => [join(WORK, 's3rver', BUCKET, `walship-${s3Run}`)],
    },
    {
      id: 'pgbackrest-sync',
      label: 'pgBackRest archive-push/get, posix repo, zstd',
      push: (pg) => {
        fresh('pgbackrest-sync', 'pgbackrest-repo-sync');
        const conf = pgbConf('sync', pg.data, false, pg);
        run('pgbackrest', [`--config=${conf}`, '--stanza=bench', 'stanza-create']);
        return `pgbackrest --config=${conf} --stanza=bench archive-push %p`;
      },
      restore: (dataDir) => `pgbackrest --config=${pgbConf('sync-get', dataDir, false)} --stanza=bench archive-get %f "%p"`,
      stored: () => [join(WORK, 'pgbackrest-repo-sync')],
    },
    {
      id: 'pgbackrest-async',
      label: 'pgBackRest archive-async, process-max 2',
      push: (pg) => {
        fresh('pgbackrest-async', 'pgbackrest-repo-async');
        const conf = pgbConf('async', pg.data, true, pg);
        run('pgbackrest', [`--config=${conf}`, '--stanza=bench', 'stanza-create']);
        return `pgbackrest --config=${conf} --stanza=bench archive-push %p`;
      },
      restore: (dataDir) => `pgbackrest --config=${pgbConf('async-get', dataDir, true)} --stanza=bench archive-get %f "%p"`,
      stored: () => [join(WORK, 'pgbackrest-repo-async')],
    },
    {
      id: 'barman-cloud',
      label: 'barman-cloud-wal-archive/restore (s3rver)',
      push: () => `barman-cloud-wal-archive --endpoint-url ${S3.endpoint} s3://${BUCKET}/barman pg %p`,
      restore: () => `barman-cloud-wal-restore --endpoint-url ${S3.endpoint} s3://${BUCKET}/barman pg %f %p`,
      stored: () => [join(WORK, 's3rver', BUCKET, 'barman')],
    },
    {
      id: 'cp',
      label: 'cp + fsync (no compression, no checks)',
      push: () => {
        fresh('cp-archive');
        const d = ownDir(join(WORK, 'cp-archive'));
        return `test ! -f ${d}/%f && cp %p ${d}/%f.tmp && sync ${d}/%f.tmp && mv ${d}/%f.tmp ${d}/%f`;
      },
      restore: () => `cp ${join(WORK, 'cp-archive')}/%f %p`,
      stored: () => [join(WORK, 'cp-archive')],
    },
  ];
  return CONTENDERS.length === 0 ? all : all.filter((c) => CONTENDERS.includes(c.id));
}

// ------------------------------------------------------------------------------------------------
/**
 * Before a timed run: waits until the kernel has written out what earlier runs left dirty, then
 * reads every file under `paths` (the files the run reads), so that the run finds them in the
 * page cache. Contenders write gigabytes each (cp and barman-cloud the whole backlog, uncompressed):
 * without this, whoever followed them read the backlog from disk and paid for their writeback
 * (walship's catch-up took 20 s after cp where it took 10 s first).
 */
function settle(paths) {
  spawnSync('sync');
  const read = (p) => {
    let st;
    try {
      st = statSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) for (const n of readdirSync(p)) read(join(p, n));
    else if (st.isFile()) readFileSync(p);
  };
  for (const p of paths) read(p);
}

// Scenario 1: archive catch-up through PostgreSQL's archiver.
async function catchUp(src, c) {
  const { pg, names, segs, bytes } = src;
  resetBacklog(pg, names);
  settle(names.map((n) => join(pg.data, 'pg_wal', n)));
  const logFrom = existsSync(pg.logFile) ? readFileSync(pg.logFile, 'utf8').length : 0;
  pg.start();
  try {
    const command = c.push(pg);
    pg.psql("SELECT pg_stat_reset_shared('archiver');");
    pg.psql(`ALTER SYSTEM SET archive_command = ${confString(command)};`);
    const status = join(pg.data, 'pg_wal', 'archive_status');
    const pending = () => names.filter((n) => existsSync(join(status, `${n}.ready`))).length;
    const limit = c.id === 'barman-cloud' ? 40 * 60_000 : 15 * 60_000;
    const t0 = process.hrtime.bigint();
    pg.psql('SELECT pg_reload_conf();');
    let left = names.length;
    let lastLog = Date.now();
    while ((left = pending()) > 0) {
      if (Number(process.hrtime.bigint() - t0) / 1e6 > limit) break;
      if (Date.now() - lastLog > 30_000) {
        log(`  ${c.id}: ${names.length - left} of ${names.length} archived`);
        lastLog = Date.now();
      }
      await sleep(25);
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const [archived, failed] = pg.psql('SELECT archived_count, failed_count FROM pg_stat_archiver').split('|').map(Number);
    pg.psql('ALTER SYSTEM RESET archive_command; SELECT pg_reload_conf();');
    const done = names.length - left;
    // walship logs a line per call answered from a read-ahead record (by the agent, or in node).
    const text = readFileSync(pg.logFile, 'utf8').slice(logFrom);
    const answers = c.id.startsWith('walship') ? { records: (text.match(/archived (earlier by read-ahead|by the background pusher) file=\S+ sha256=\S+$/gm) ?? []).length } : undefined;
    return { id: c.id, label: c.label, secs, files: names.length, done, segments: segs.length, bytes, archived, failed, complete: left === 0, answers };
  } finally {
    pg.stop();
  }
}

// Scenario 2: recovery of the base backup through restore_command, to the end of the archive.
async function replay(src, c) {
  const base = ownDir(join(WORK, `replay-${c.id}`));
  const data = join(base, 'data');
  run('cp', ['-a', src.backup, data]);
  const pg = new Pg(base, data);
  pg.conf({ port: pg.port, unix_socket_directories: `'${base}'`, archive_mode: 'off', restore_command: confString(c.restore(data)), logging_collector: 'off' });
  writeFileSync(join(data, 'recovery.signal'), '');
  chownSync(join(data, 'recovery.signal'), U.uid, U.gid);
  const limit = c.id === 'barman-cloud' ? 40 * 60_000 : 15 * 60_000;
  settle([data, ...c.stored()]);
  const t0 = process.hrtime.bigint();
  pg.start(false);
  let ok = false;
  for (;;) {
    const text = existsSync(pg.logFile) ? readFileSync(pg.logFile, 'utf8') : '';
    if (/database system is ready to accept connections/.test(text) && /archive recovery complete|selected new timeline ID/.test(text)) {
      ok = true;
      break;
    }
    if (/FATAL|PANIC/.test(text) || Number(process.hrtime.bigint() - t0) / 1e6 > limit) break;
    await sleep(20);
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const text = readFileSync(pg.logFile, 'utf8');
  const restored = (text.match(/restored log file "[0-9A-F]{24}" from archive/g) ?? []).length;
  // walship's restore_command logs at debug level: which path answered each call.
  const count = (re) => (text.match(re) ?? []).length;
  const answers = c.id === 'walship-fs' || c.id === 'walship-s3'
    ? {
        agent: count(/DEBUG \[archive-fetch\] answered by the agent/g),
        spool: count(/delivered from the prefetch spool file=\S+ dest=\S+$/gm),
        repository: count(/DEBUG \[archive-fetch\] delivered file=/g),
      }
    : undefined;
  let same = false;
  if (ok) {
    try {
      same = pg.psql("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts") === src.expected;
    } catch {
      same = false;
    }
  }
  pg.stop('immediate');
  if (!ok) log(`  ${c.id}: recovery did not finish: ${text.split('\n').filter((l) => /FATAL|PANIC|ERROR/.test(l)).slice(-3).join(' | ')}`);
  rmSync(base, { recursive: true, force: true });
  return { id: c.id, label: c.label, secs, restored, ok, same, answers };
}

// Scenario 4: sustained load. A fresh cluster with archiving on, pgbench writing as fast as it
// can for LOAD_SECS: the .ready backlog the contender leaves (sampled every 500 ms, and at the
// end of the load), the time it takes to drain it after the load, and the load's tps.
async function sustained(c) {
  const base = ownDir(join(WORK, `load-${c.id}`));
  const pg = newCluster(base, { max_wal_size: "'1GB'" });
  const status = join(pg.data, 'pg_wal', 'archive_status');
  const ready = () => readdirSync(status).filter((f) => f.endsWith('.ready')).length;
  try {
    pg.pgbench(['-i', '-s', '10', '-q']);
    pg.psql(`ALTER SYSTEM SET archive_command = ${confString(c.push(pg))}; SELECT pg_reload_conf();`);
    // What the data load left is archived before the clock starts.
    for (const deadline = Date.now() + 10 * 60_000; ready() > 0 && Date.now() < deadline; ) await sleep(100);
    pg.psql("SELECT pg_stat_reset_shared('archiver');");
    settle([]);
    const samples = [];
    const t0 = Date.now();
    const load = new Promise((resolve) => {
      const p = spawn(join(PGBIN, 'pgbench'), ['-h', base, '-p', String(pg.port), '-U', 'postgres', '-c', '2', '-j', '2', '-n', '-M', 'prepared', '-T', String(LOAD_SECS), 'postgres'], {
        uid: U.uid,
        gid: U.gid,
        cwd: WORK,
        env: baseEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.on('close', (code) => resolve({ code, out }));
    });
    let done = false;
    void load.then(() => (done = true));
    while (!done) {
      samples.push(ready());
      await sleep(500);
    }
    const { code, out } = await load;
    if (code !== 0) throw new Error(`pgbench exited ${code}: ${out.slice(-500)}`);
    const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
    const atEnd = ready();
    const t1 = Date.now();
    for (const deadline = t1 + 10 * 60_000; ready() > 0 && Date.now() < deadline; ) await sleep(50);
    const drain = (Date.now() - t1) / 1000;
    const [archived, failed] = pg.psql('SELECT archived_count, failed_count FROM pg_stat_archiver').split('|').map(Number);
    pg.psql('ALTER SYSTEM RESET archive_command; SELECT pg_reload_conf();');
    return { id: c.id, label: c.label, secs: (t1 - t0) / 1000, tps, atEnd, maxReady: Math.max(0, ...samples), meanReady: samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length), drain, drained: ready() === 0, archived, failed };
  } finally {
    pg.stop('immediate');
    rmSync(base, { recursive: true, force: true });
  }
}

// Scenario 3: latency of single calls (each a fresh process, as PostgreSQL runs them).
function latency(src) {
  const dir = ownDir(join(WORK, 'latency'));
  const wal = ownDir(join(dir, 'wal'));
  const picks = src.segs.slice(-LAT_N);
  for (const n of picks) {
    copyFileSync(join(src.pg.data, 'pg_wal', n), join(wal, n));
    chownSync(join(wal, n), U.uid, U.gid);
  }
  const out = join(dir, 'out');
  const rows = [];
  const measure = (op, tool, fn) => {
    const ms = [];
    for (let i = 0; i < picks.length; i++) ms.push(fn(picks[i], i));
    rows.push({ op, tool, median: median(ms), p90: pct(ms, 0.9), n: ms.length });
    log(`  ${op} ${tool}: median ${median(ms).toFixed(1)} ms`);
  };
  const sh = (cmd, o) => timed('sh', ['-c', cmd], o);

  // The bare cost of starting node here, with and without this machine's NODE_EXTRA_CA_CERTS.
  const nodeStart = [];
  for (let i = 0; i < LAT_N; i++) nodeStart.push(timed(node, ['-e', '0']));
  rows.push({ op: 'start', tool: 'node -e 0', median: median(nodeStart), p90: pct(nodeStart, 0.9), n: nodeStart.length });
  if (process.env.NODE_EXTRA_CA_CERTS) {
    const withCa = [];
    for (let i = 0; i < LAT_N; i++) withCa.push(timed(node, ['-e', '0'], { env: { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } }));
    rows.push({ op: 'start', tool: 'node -e 0 with NODE_EXTRA_CA_CERTS', median: median(withCa), p90: pct(withCa, 0.9), n: withCa.length });
  }

  // walship, filesystem and S3 (a push outside pg_wal: no read-ahead; a fetch to a plain file: no prefetch).
  const fsRepo = join(dir, 'w-repo');
  const fsCat = join(dir, 'w.db');
  run(node, [WALSHIP, 'init', '--repo', fsRepo, '--catalog', fsCat, '--config', '/dev/null']);
  const w = (a) => `${WALSHIP_CMD} ${a} --config /dev/null`;
  const wNode = (a) => `${node} ${WALSHIP} ${a} --config /dev/null`;
  measure('push', 'walship fs', (n) => sh(w(`archive-push ${wal}/${n} --repo ${fsRepo} --catalog ${fsCat}`)));
  measure('fetch', 'walship fs', (n) => sh(w(`archive-fetch ${n} ${out} --repo ${fsRepo} --catalog ${fsCat}`)));
  const s3 = `--repo s3://${BUCKET}/lat --catalog ${join(dir, 'w3.db')} ${walshipS3Flags()}`;
  measure('push', 'walship s3', (n) => sh(w(`archive-push ${wal}/${n} ${s3}`)));
  measure('fetch', 'walship s3', (n) => sh(w(`archive-fetch ${n} ${out} ${s3}`)));
  // The same calls answered by the agent: made in a data directory, as PostgreSQL makes them,
  // once the first call has started it; push_readahead 0, so that each push is a push of its own
  // file, never one the pusher did ahead.
  const adata = ownDir(join(dir, 'adata'));
  ownDir(join(adata, 'pg_wal'));
  writeFileSync(join(adata, 'PG_VERSION'), '15\n');
  chownSync(join(adata, 'PG_VERSION'), U.uid, U.gid);
  for (const n of picks) {
    copyFileSync(join(wal, n), join(adata, 'pg_wal', n));
    chownSync(join(adata, 'pg_wal', n), U.uid, U.gid);
  }
  const agentSock = join(dir, 'walship-agent.adata', 'agent.sock');
  const byAgent = (label, repoFlags) => {
    const a = (c) => w(`${c} ${repoFlags} --push-readahead 0`);
    sh(a(`archive-push pg_wal/${picks[0]}`), { cwd: adata }); // starts the agent
    for (const deadline = Date.now() + 20_000; !existsSync(agentSock) && Date.now() < deadline; ) spawnSync('sleep', ['0.05']);
    const pushes = picks.slice(1).map((n) => sh(a(`archive-push pg_wal/${n}`), { cwd: adata }));
    const fetches = picks.slice(1).map((n) => sh(a(`archive-fetch ${n} ${out}`), { cwd: adata }));
    rows.push({ op: 'push', tool: `walship ${label}, answered by the agent`, median: median(pushes), p90: pct(pushes, 0.9), n: pushes.length });
    rows.push({ op: 'fetch', tool: `walship ${label}, answered by the agent`, median: median(fetches), p90: pct(fetches, 0.9), n: fetches.length });
    log(`  walship ${label}, answered by the agent: push median ${median(pushes).toFixed(1)} ms, fetch ${median(fetches).toFixed(1)} ms`);
    // The next settings get an agent of their own.
    const lock = join(dir, 'walship-agent.adata', 'agent.lock');
    try {
      process.kill(JSON.parse(readFileSync(lock, 'utf8')).pid, 'SIGTERM');
    } catch {}
    for (const deadline = Date.now() + 10_000; (existsSync(agentSock) || existsSync(lock)) && Date.now() < deadline; ) spawnSync('sleep', ['0.05']);
  };
  const aRepo = join(dir, 'a-repo');
  const aCat = join(dir, 'a.db');
  run(node, [WALSHIP, 'init', '--repo', aRepo, '--catalog', aCat, '--config', '/dev/null']);
  byAgent('fs', `--repo ${aRepo} --catalog ${aCat}`);
  byAgent('s3', `--repo s3://${BUCKET}/lat-agent --catalog ${join(dir, 'a3.db')} ${walshipS3Flags()}`);

  // A push answered from a read-ahead record, and a fetch answered from the prefetch spool.
  // In data directories (PG_VERSION), as PostgreSQL's calls are: the agent answers the installed command's calls.
  const staged = ownDir(join(dir, 'staged'));
  ownDir(join(staged, 'pg_wal', 'archive_status'));
  writeFileSync(join(staged, 'PG_VERSION'), '15\n');
  chownSync(join(staged, 'PG_VERSION'), U.uid, U.gid);
  for (const n of picks) {
    copyFileSync(join(wal, n), join(staged, 'pg_wal', n));
    writeFileSync(join(staged, 'pg_wal', 'archive_status', `${n}.ready`), '');
    for (const f of [join(staged, 'pg_wal', n), join(staged, 'pg_wal', 'archive_status', `${n}.ready`)]) chownSync(f, U.uid, U.gid);
  }
  const raRepo = join(dir, 'ra-repo');
  const raCat = join(dir, 'ra.db');
  run(node, [WALSHIP, 'init', '--repo', raRepo, '--catalog', raCat, '--config', '/dev/null']);
  const heavy = sh(w(`archive-push pg_wal/${picks[0]} --repo ${raRepo} --catalog ${raCat}`), { cwd: staged });
  rows.push({ op: 'push', tool: `walship fs, the call that starts the background pusher (${picks.length} .ready)`, median: heavy, p90: heavy, n: 1 });
  // Then the pusher stores the others in the background; PostgreSQL's calls find its records.
  const records = `${raCat}.readahead`;
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; spawnSync('sleep', ['0.1'])) {
    if (picks.every((n) => existsSync(join(records, n)))) break;
  }
  // Every other call runs in node (bin/walship.js), for comparison.
  const answered = [];
  const answeredNode = [];
  for (const [i, n] of picks.slice(1).entries()) {
    const call = `archive-push pg_wal/${n} --repo ${raRepo} --catalog ${raCat}`;
    if (i % 2 === 0) answered.push(sh(w(call), { cwd: staged }));
    else answeredNode.push(sh(wNode(call), { cwd: staged }));
  }
  rows.push({ op: 'push', tool: 'walship fs, answered by read-ahead, through the agent', median: median(answered), p90: pct(answered, 0.9), n: answered.length });
  rows.push({ op: 'push', tool: 'walship fs, answered by read-ahead, in node', median: median(answeredNode), p90: pct(answeredNode, 0.9), n: answeredNode.length });
  log(`  push walship fs, answered by read-ahead through the agent: median ${median(answered).toFixed(1)} ms; in node ${median(answeredNode).toFixed(1)} ms`);
  const rdata = ownDir(join(dir, 'rdata'));
  ownDir(join(rdata, 'pg_wal'));
  writeFileSync(join(rdata, 'PG_VERSION'), '15\n');
  chownSync(join(rdata, 'PG_VERSION'), U.uid, U.gid);
  const spooled = [];
  const spooledNode = [];
  sh(w(`archive-fetch ${picks[0]} pg_wal/RECOVERYXLOG --repo ${fsRepo} --catalog ${fsCat}`), { cwd: rdata });
  for (const [i, n] of picks.slice(1).entries()) {
    // Until the prefetcher has spooled it (busy-waiting: on this machine an idle CPU makes the
    // next process start two to three times slower, which a recovery in progress never sees).
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
      const spool = readdirSync(dir).find((f) => f.startsWith('walship-spool-'));
      if (spool && existsSync(join(dir, spool, `${n}.meta`))) break;
    }
    // As PostgreSQL does before each restore_command: the previous RECOVERYXLOG is removed first.
    rmSync(join(rdata, 'pg_wal', 'RECOVERYXLOG'), { force: true });
    // Every other call runs in node (bin/walship.js), for comparison.
    const call = `archive-fetch ${n} pg_wal/RECOVERYXLOG --repo ${fsRepo} --catalog ${fsCat}`;
    if (i % 2 === 0) spooled.push(sh(w(call), { cwd: rdata }));
    else spooledNode.push(sh(wNode(call), { cwd: rdata }));
  }
  const spoolTool = 'walship fs, from the prefetch spool, through the agent';
  rows.push({ op: 'fetch', tool: spoolTool, median: median(spooled), p90: pct(spooled, 0.9), n: spooled.length });
  rows.push({ op: 'fetch', tool: 'walship fs, from the prefetch spool, in node', median: median(spooledNode), p90: pct(spooledNode, 0.9), n: spooledNode.length });
  log(`  fetch walship fs, from the prefetch spool through the agent: median ${median(spooled).toFixed(1)} ms; in node ${median(spooledNode).toFixed(1)} ms`);

  // pgBackRest (sync), against the source cluster's stanza settings.
  src.pg.start();
  try {
    const confPath = pgbConf('lat', src.pg.data, false, src.pg);
    run('pgbackrest', [`--config=${confPath}`, '--stanza=bench', 'stanza-create']);
    measure('push', 'pgbackrest', (n) => sh(`pgbackrest --config=${confPath} --stanza=bench archive-push ${wal}/${n}`));
    measure('fetch', 'pgbackrest', (n) => sh(`pgbackrest --config=${confPath} --stanza=bench archive-get ${n} ${out}`));
  } finally {
    src.pg.stop();
  }
  const bm = `--endpoint-url ${S3.endpoint} s3://${BUCKET}/barman-lat pg`;
  measure('push', 'barman-cloud', (n) => sh(`barman-cloud-wal-archive ${bm} ${wal}/${n}`));
  measure('fetch', 'barman-cloud', (n) => sh(`barman-cloud-wal-restore ${bm} ${n} ${out}`));
  const cpd = ownDir(join(dir, 'cp'));
  measure('push', 'cp + fsync', (n) => sh(`test ! -f ${cpd}/${n} && cp ${wal}/${n} ${cpd}/${n}.tmp && sync ${cpd}/${n}.tmp && mv ${cpd}/${n}.tmp ${cpd}/${n}`));
  measure('fetch', 'cp', (n) => sh(`cp ${cpd}/${n} ${out}`));
  return rows;
}

// Scenario 4: the WAL scanner on the backlog's last segments.
async function scanner(src) {
  const { scanSegment } = await import(join(ROOT, 'dist', 'wal', 'scanner.js'));
  const { inspectFirstPage } = await import(join(ROOT, 'dist', 'wal', 'page.js'));
  const { parseWalFileName, segNoFromLogSeg } = await import(join(ROOT, 'dist', 'wal', 'names.js'));
  const use = (src.tpcb.length >= 4 ? src.tpcb : src.segs).slice(-12).map((name) => {
    const buf = readFileSync(join(src.pg.data, 'pg_wal', name));
    const file = parseWalFileName(name);
    const h = inspectFirstPage(buf, file);
    return { buf, segSize: h.segSize, pgMajor: h.pgMajor, startLsn: segNoFromLogSeg(file.logSeg, h.segSize) * h.segSize };
  });
  const total = use.reduce((a, s) => a + s.buf.length, 0);
  const once = () => {
    let carry = null;
    let records = 0;
    const t = process.hrtime.bigint();
    for (const s of use) {
      const r = scanSegment(s.buf, { segSize: s.segSize, startLsn: s.startLsn, pgMajor: s.pgMajor, carry });
      carry = r.tailCont;
      records += r.records;
    }
    return { secs: Number(process.hrtime.bigint() - t) / 1e9, records };
  };
  once();
  const runs = Array.from({ length: 5 }, once);
  const secs = median(runs.map((r) => r.secs));
  const { crc32cImplementation } = await import(join(ROOT, 'dist', 'wal', 'crc32c.js'));
  return { segments: use.length, mb: total / 1e6, mbps: total / 1e6 / secs, recordsPerSec: runs[0].records / secs, crc: crc32cImplementation ?? 'js' };
}

// ------------------------------------------------------------------------------------------------
function fmt(n, d = 1) {
  return Number.isFinite(n) ? n.toFixed(d) : 'n/a';
}

/** The sections of docs/benchmarks.md that scripts/bench-catalog.mjs, bench-retention.mjs and bench-drill.mjs write (kept as they are). */
const KEPT_SECTIONS = ['bench-catalog', 'bench-retention', 'bench-drill'].map((m) => new RegExp(`<!-- ${m} -->[\\s\\S]*<!-- /${m} -->\\n?`));

function writeReport(r) {
  const old = existsSync(OUT) ? readFileSync(OUT, 'utf8') : '';
  const kept = KEPT_SECTIONS.map((re) => re.exec(old)?.[0] ?? '').filter((s) => s !== '');
  writeFileSync(OUT, report(r) + kept.map((k) => `\n${k}`).join(''));
}

function report(r) {
  const v = r.versions;
  const L = [];
  L.push('# Benchmarks');
  L.push('');
  L.push(`Generated by \`npm run bench${QUICK ? ' -- --quick' : ''}\` (scripts/bench.mjs) on ${new Date(startedAt).toISOString().slice(0, 16)}Z, in ${fmt((Date.now() - startedAt) / 60000, 0)} minutes.`);
  L.push('Benchmarks, not tests: one machine, one run; the numbers move with the machine and what else runs on it.');
  L.push('');
  L.push('## Machine and versions');
  L.push('');
  L.push('| | |');
  L.push('|---|---|');
  for (const [k, val] of Object.entries(v)) L.push(`| ${k} | ${val} |`);
  L.push(`| load average (start → end) | ${r.loadStart} → ${loadavg().map((x) => x.toFixed(2)).join(' ')} |`);
  L.push('');
  L.push(
    `The WAL: pgbench on PostgreSQL 15 with 16 MiB segments (\`-i -s ${QUICK ? 5 : 20}\` before the base backup; then TPC-B with 2 clients for ${QUICK ? 10 : 30} s, checkpoint_timeout 30 s; then \`pgbench -i -s ${QUICK ? 10 : 40}\` data loads until the backlog is reached; then 5 s of TPC-B): ` +
      `${r.wal.segs} segments (${fmt(r.wal.mib, 0)} MiB) plus ${r.wal.others} other files (.backup). Every contender gets exactly this backlog, and every timed run starts after a \`sync\` and a read of the files it reads (the backlog; for a replay, the contender's repository and the backup copy): what the run before wrote is on disk and out of its way, and what it reads is in the page cache. ` +
      'PostgreSQL, and so every archive_command and restore_command, runs with a minimal environment (PATH, HOME, LANG, TZ, S3 credentials), as under a service manager.',
  );
  L.push('');
  L.push('Settings: walship defaults (zstd level 1, push_readahead 16, fetch_prefetch 16), run as installed (`bin/walship`), its restore_command with `--log-level debug` (one line per call, so that the log tells which path answered); pgBackRest zstd at its default level, `process-max=2`, ' +
    '`archive-get-queue-max=256MiB` (as deep as walship\'s prefetch), archive-async on or off; barman-cloud defaults (no compression) against s3rver on 127.0.0.1; ' +
    '`cp`: `test ! -f` + `cp` to a temp name + `sync` of the file + `mv`.');
  if (r.catchup) {
    L.push('');
    L.push('## Archive catch-up');
    L.push('');
    L.push('The backlog is waiting as `.ready`; the clock starts at the `pg_reload_conf()` that sets archive_command and stops when no file of the backlog is `.ready` any more (then pg_stat_archiver is read). ' +
      `${CATCHUP_RUNS} rounds, each running every contender once in turn into a fresh repository, and the median per contender (barman-cloud: 1 run); pg_stat_archiver's counts are the last run's. ` +
      's3rver, a node process that keeps each object as files, gets slower as it fills during the run (compare the S3 rounds); the latency section runs against a fresh s3rver. ' +
      'walship\'s background pusher pushes ahead only while PostgreSQL calls walship (since 2026-12-01). Before, the pusher of walship\'s run went on pushing the backlog again while the next contenders ran, and the pgBackRest times of earlier versions of this page were slowed by it (pgBackRest async: 13 to 22 s for this backlog then).');
    L.push('');
    const ws = r.catchup.find((x) => x.id === 'walship-fs');
    L.push('| contender | time (s), median | runs (s) | MB/s | segments/s | archived / failed (pg_stat_archiver) | time ÷ walship fs time |');
    L.push('|---|---:|---|---:|---:|---:|---:|');
    for (const x of r.catchup) {
      const mbps = x.complete ? x.bytes / 1e6 / x.secs : NaN;
      L.push(`| ${x.label} | ${x.complete ? fmt(x.secs) : `DNF (${x.done}/${x.files} in ${fmt(x.secs, 0)} s)`} | ${(x.runs ?? [x.secs]).map((v) => fmt(v)).join(', ')} | ${fmt(mbps, 0)} | ${fmt(x.complete ? x.segments / x.secs : NaN)} | ${x.archived} / ${x.failed} | ${ws && x.complete && ws.complete ? `${fmt(x.secs / ws.secs, 2)}×` : 'n/a'} |`);
    }
    const wa = ws?.answers;
    if (wa) {
      L.push('');
      L.push(`In walship's last filesystem run, ${wa.records} of PostgreSQL's ${ws.files} archive_command calls were answered from a read-ahead record (by the agent, or in node while none was up); the others pushed their file themselves.`);
    }
  }
  if (r.replay) {
    L.push('');
    L.push('## Recovery replay');
    L.push('');
    L.push(`A base backup taken before the backlog, recovered through restore_command to the end of the archive (recovery.signal); the clock runs from \`pg_ctl start\` until the server accepts connections after archive recovery. The same recovery for every contender: what differs is restore_command. ${REPLAY_RUNS} rounds, each running every contender once in turn (so that the machine's drift in speed falls on all alike), and the median per contender (barman-cloud: 1 run), each from a fresh copy of the backup.`);
    L.push('');
    const ws = r.replay.find((x) => x.id === 'walship-fs');
    L.push('| contender | time (s), median | runs (s) | segments restored | data equal | time ÷ walship fs time |');
    L.push('|---|---:|---|---:|---|---:|');
    for (const x of r.replay) {
      L.push(`| ${x.label} | ${x.ok ? fmt(x.secs) : `failed after ${fmt(x.secs, 0)} s`} | ${(x.runs ?? [x.secs]).map((v) => fmt(v)).join(', ')} | ${x.restored} | ${x.same ? 'yes' : 'no'} | ${ws && ws.ok && x.ok ? `${fmt(x.secs / ws.secs, 2)}×` : 'n/a'} |`);
    }
  }
  if (r.replay && r.latency) {
    // Recovery waits for every restore_command: the cost of one call is paid once per segment.
    const spool = r.latency.find((x) => x.tool === 'walship fs, from the prefetch spool, through the agent');
    const inNode = r.latency.find((x) => x.tool === 'walship fs, from the prefetch spool, in node');
    const start = r.latency.find((x) => x.tool === 'node -e 0');
    const w = r.replay.find((x) => x.id === 'walship-fs' && x.ok);
    const pa = r.replay.find((x) => x.id === 'pgbackrest-async' && x.ok);
    if (spool && inNode && start && w && pa) {
      const perSeg = ((w.secs - pa.secs) * 1000) / r.wal.segs;
      L.push('');
      L.push(
        `PostgreSQL's recovery runs restore_command once per segment and waits for it, so a call's fixed cost is paid ${r.wal.segs} times in a row. ` +
          `A walship call answered from the prefetch spool costs ${fmt(spool.median)} ms here through the agent (the client dist/walship-client, started by bin/walship: no node), ` +
          `against ${fmt(inNode.median)} ms when node answers it (${fmt(start.median)} ms of that is node's own start). ` +
          `walship's replay took ${fmt(Math.abs(perSeg))} ms per segment ${perSeg > 0 ? 'more' : 'less'} than pgBackRest's async archive-get, which also answers from its own spool. ` +
          'On this two-core machine replay and prefetching compete for the CPU: walship\'s prefetcher runs at nice 10, so that the replay wins, and verifies an object by the SHA-256 of its compressed data (with zstd\'s own checksum of the output) rather than hashing each 16 MiB segment.',
      );
    }
  }
  if (r.load) {
    L.push('');
    L.push('## Sustained load');
    L.push('');
    L.push(`A fresh cluster (pgbench \`-i -s 10\`, fsync and synchronous_commit off, so that pgbench writes WAL as fast as this machine lets it), archiving on; once what the data load left is archived, TPC-B with 2 clients for ${LOAD_SECS} s. The \`.ready\` backlog is sampled every 500 ms; after the load, the clock runs until none is left. The archiver and pgbench share the two cores, so a contender that costs more CPU per segment costs the load tps.`);
    L.push('');
    L.push(`${LOAD_RUNS} rounds, each running every contender once in turn; tps is the median run's, the backlog and the drain time the worst run's, archived / failed the median run's.`);
    L.push('');
    L.push('| contender | tps, median | runs (tps) | .ready at the end of the load | .ready, max during it | drain after the load (s) | archived / failed |');
    L.push('|---|---:|---|---:|---:|---:|---:|');
    for (const x of r.load) {
      L.push(`| ${x.label} | ${fmt(x.tps, 0)} | ${x.tpsRuns.map((v) => fmt(v, 0)).join(', ')} | ${x.atEnd} | ${x.maxReady} | ${x.drained ? fmt(x.drain) : `not drained in ${fmt(x.drain, 0)} s`} | ${x.archived} / ${x.failed} |`);
    }
  }
  if (r.latency) {
    L.push('');
    L.push('## Latency of one call');
    L.push('');
    L.push(`Each call a new process, as PostgreSQL runs them; distinct 16 MiB segments; median and 90th percentile of ${LAT_N} calls (n below). Push: to a fresh repository; fetch: to a plain file (no prefetch) unless noted. S3 calls go to an s3rver started for this section (the one of the scenarios above is full by then).`);
    L.push('');
    const ref = (op) => r.latency.find((x) => x.op === op && x.tool === `walship fs`);
    L.push('| call | tool | median (ms) | p90 (ms) | n | median ÷ walship fs median |');
    L.push('|---|---|---:|---:|---:|---:|');
    for (const x of r.latency) {
      const base = ref(x.op);
      L.push(`| ${x.op} | ${x.tool} | ${fmt(x.median)} | ${fmt(x.p90)} | ${x.n} | ${base && x.op !== 'start' ? `${fmt(x.median / base.median, 2)}` : ''} |`);
    }
  }
  if (r.latency) {
    const rec = r.latency.find((x) => x.tool === 'walship fs, answered by read-ahead, in node');
    const recC = r.latency.find((x) => x.tool === 'walship fs, answered by read-ahead, through the agent');
    const spoolC = r.latency.find((x) => x.tool === 'walship fs, from the prefetch spool, through the agent');
    const pushA = r.latency.find((x) => x.tool === 'walship fs, answered by the agent' && x.op === 'push');
    const start = r.latency.find((x) => x.tool === 'node -e 0');
    if (rec && start) {
      L.push('');
      L.push(
        `What a per-file call costs beyond node's own start (${fmt(start.median)} ms): ${fmt(rec.median - start.median)} ms for a push answered from a read-ahead record in node. ` +
          (recC && spoolC ? `Through the agent those calls start no node: ${fmt(recC.median)} ms for the push, ${fmt(spoolC.median)} ms for a fetch from the spool (bin/walship, the client, a connection; the agent runs the same code).${pushA ? ` A push of a file nobody pushed ahead costs ${fmt(pushA.median)} ms through the agent (the file read, checked, compressed and stored durably).` : ''} ` : '') +
          'bin/walship.js loads one CommonJS bundle of the CLI (dist/walship.cjs, no ES module loader, packages with native code required only by the calls that use them) compiled from V8\'s code cache, ' +
          'the call\'s own file operations are synchronous, and nothing it does not use is loaded (no commander, storage driver, SQLite, zstd or S3 SDK for an answer from a record or the spool). ' +
          'A node startup snapshot (`--snapshot-blob`) was measured and not used: reading its 4 MB blob made `node` start slower than without it (28 ms against 22 ms, 2026-11-30).',
      );
    }
  }
  if (r.scanner) {
    L.push('');
    L.push('## WAL scanner');
    L.push('');
    L.push(`\`scanSegment\` over ${r.scanner.segments} TPC-B segments of the backlog (${fmt(r.scanner.mb, 0)} MB), every record's CRC-32C checked (${r.scanner.crc === 'native' ? 'native CRC-32C for ranges of 512 bytes or more, TypeScript for shorter ones' : 'TypeScript CRC-32C'}), median of 5: **${fmt(r.scanner.mbps, 0)} MB/s**, ${fmt(r.scanner.recordsPerSec / 1e6, 2)} M records/s (one core).`);
  }

  if (r.goals.length) {
    L.push('');
    L.push('## Goals');
    L.push('');
    for (const g of r.goals) L.push(`- ${g}`);
  }
  L.push('');
  return L.join('\n');
}

function goals(r) {
  const out = [];
  const get = (list, id) => list?.find((x) => x.id === id);
  const verdict = (ok) => `**${ok ? 'met' : 'not met'}**`;
  // Time ratios, walship's time ÷ pgBackRest async's: lower is faster. The goals of the agent's issue.
  const big = r.wal && r.wal.segs >= 250;
  for (const [name, list, ok, limit] of [
    ['archive catch-up', r.catchup, (x) => x.complete, big ? 0.5 : 0.7],
    ['recovery replay', r.replay, (x) => x.ok, big ? 0.9 : 1.0],
  ]) {
    if (!list) continue;
    const w = get(list, 'walship-fs');
    const ws3 = get(list, 'walship-s3');
    const pa = get(list, 'pgbackrest-async');
    const b = get(list, 'barman-cloud');
    if (w && pa && ok(w) && ok(pa)) {
      const f = w.secs / pa.secs;
      out.push(`${name} of ${r.wal.segs} segments, walship (filesystem) time ÷ pgBackRest async's: ${fmt(f, 2)} — goal ≤ ${limit}: ${verdict(f <= limit)}`);
    }
    if (ws3 && pa && ok(ws3) && ok(pa)) {
      // pgBackRest's S3 driver needs TLS, which s3rver does not offer: its posix repository is the only pgBackRest here.
      out.push(`${name}, walship (S3 on s3rver) time ÷ pgBackRest async's (posix: a local directory, not the same store): ${fmt(ws3.secs / pa.secs, 2)}, for reference`);
    }
    if (ws3 && b && ok(ws3) && ok(b)) {
      const f = b.secs / ws3.secs;
      out.push(`${name}, walship (S3) vs barman-cloud (S3): ${fmt(f, 2)}× faster — goal ≥ 5×: ${verdict(f >= 5)}`);
    }
  }
  if (r.load) {
    const w = get(r.load, 'walship-fs');
    const pa = get(r.load, 'pgbackrest-async');
    if (w && pa) {
      out.push(`sustained load, walship (filesystem) against pgBackRest async: .ready at the end ${w.atEnd} vs ${pa.atEnd}, drain ${fmt(w.drain)} s vs ${fmt(pa.drain)} s, tps ${fmt(w.tps, 0)} vs ${fmt(pa.tps, 0)} — goal backlog and drain ≤, tps ≥: ${verdict(w.drained && w.atEnd <= pa.atEnd && w.drain <= pa.drain + 0.5 && w.tps >= pa.tps * 0.98)} (drain within 0.5 s, tps within 2%: the sampling's resolution and run-to-run noise)`);
    }
  }
  if (r.latency) {
    const m = (tool, op = 'push') => r.latency.find((x) => x.tool === tool && x.op === op)?.median;
    const agent = m('walship fs, answered by the agent');
    const agentS3 = m('walship s3, answered by the agent');
    const pgb = m('pgbackrest');
    if (agent && pgb) out.push(`one push of a segment nobody pushed ahead, through the agent, ÷ pgBackRest's: ${fmt(agent / pgb, 2)} — goal ≤ 0.8: ${verdict(agent / pgb <= 0.8)}`);
    if (agent && agentS3) out.push(`the same push to S3 (s3rver) ÷ to the filesystem: ${fmt(agentS3 / agent, 2)} — goal ≤ 2: ${verdict(agentS3 / agent <= 2)}`);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
const results = { versions: versions(), loadStart: loadavg().map((x) => x.toFixed(2)).join(' '), goals: [] };
log(`work dir ${WORK}; target ${TARGET} segments${QUICK ? ' (quick)' : ''}`);
S3 = await startS3rver();
try {
  const src = await makeWal();
  results.wal = { segs: src.segs.length, mib: src.bytes / 2 ** 20, others: src.names.length - src.segs.length };
  // Warm the page cache with the backlog so that no contender pays for the first read.
  for (const n of src.segs) readFileSync(join(src.pg.data, 'pg_wal', n));
  const list = contenders();
  if (ONLY.includes('catchup')) {
    // Rounds, as for replay below (barman-cloud: one run); each run archives into a fresh
    // repository, and the last run's repository is the one replay reads.
    const runs = new Map(list.map((c) => [c.id, []]));
    for (let round = 0; round < CATCHUP_RUNS; round++) {
      for (const c of list) {
        const mine = runs.get(c.id);
        if ((c.id === 'barman-cloud' && round > 0) || mine.some((r) => !r.complete)) continue;
        log(`catch-up: ${c.id}${CATCHUP_RUNS > 1 ? ` (round ${round + 1})` : ''}`);
        const res = await catchUp(src, c);
        const a = res.answers;
        log(`  ${c.id}: ${res.complete ? `${res.secs.toFixed(1)} s` : 'did not finish'} (archived ${res.archived}, failed ${res.failed})${a ? `; answered from read-ahead records: ${a.records}` : ''}`);
        mine.push(res);
      }
      results.catchup = list.map((c) => {
        const rs = runs.get(c.id);
        return { ...rs[rs.length - 1], complete: rs.every((r) => r.complete), secs: median(rs.map((r) => r.secs)), runs: rs.map((r) => r.secs) };
      });
      writeReport({ ...results, goals: goals(results) });
    }
  }
  if (ONLY.includes('replay')) {
    // Replay times move with PostgreSQL's own I/O and with the machine's speed, which drifts over
    // a run: several rounds, each running every contender once in turn, and the median per
    // contender (barman-cloud: one run, in the first round; it is slow).
    const playing = list.filter((c) => !results.catchup || results.catchup.find((x) => x.id === c.id)?.complete);
    const runs = new Map(playing.map((c) => [c.id, []]));
    for (let round = 0; round < REPLAY_RUNS; round++) {
      for (const c of playing) {
        const mine = runs.get(c.id);
        if ((c.id === 'barman-cloud' && round > 0) || mine.some((r) => !r.ok || !r.same)) continue;
        log(`replay: ${c.id}${REPLAY_RUNS > 1 ? ` (round ${round + 1})` : ''}`);
        const one = await replay(src, c);
        const a = one.answers;
        log(`  ${c.id}: ${one.ok ? `${one.secs.toFixed(1)} s` : 'failed'}, ${one.restored} segments restored, data ${one.same ? 'equal' : 'DIFFERENT'}${a ? `; answered by the agent ${a.agent}, from the spool ${a.spool}, from the repository ${a.repository}` : ''}`);
        mine.push(one);
      }
      results.replay = playing.map((c) => {
        const rs = runs.get(c.id);
        return { ...rs[0], ok: rs.every((r) => r.ok), same: rs.every((r) => r.same), secs: median(rs.map((r) => r.secs)), runs: rs.map((r) => r.secs) };
      });
      writeReport({ ...results, goals: goals(results) });
    }
  }
  if (ONLY.includes('load')) {
    // Rounds, each running every contender once in turn; per contender the median run by tps.
    const loading = list.filter((x) => LOAD_IDS.includes(x.id));
    const runs = new Map(loading.map((c) => [c.id, []]));
    for (let round = 1; round <= LOAD_RUNS; round++) {
      for (const c of loading) {
        log(`sustained load: ${c.id} (${LOAD_SECS} s, round ${round})`);
        const x = await sustained(c);
        log(`  ${c.id}: ${fmt(x.tps, 0)} tps; .ready at the end ${x.atEnd} (max ${x.maxReady}); drained in ${fmt(x.drain)} s; archived ${x.archived}, failed ${x.failed}`);
        runs.get(c.id).push(x);
      }
    }
    results.load = loading.map((c) => {
      const rs = [...runs.get(c.id)].sort((a, b) => a.tps - b.tps);
      const mid = rs[Math.floor((rs.length - 1) / 2)];
      return { ...mid, tpsRuns: runs.get(c.id).map((x) => x.tps), atEnd: Math.max(...rs.map((x) => x.atEnd)), drain: Math.max(...rs.map((x) => x.drain)), drained: rs.every((x) => x.drained), maxReady: Math.max(...rs.map((x) => x.maxReady)) };
    });
    writeReport({ ...results, goals: goals(results) });
  }
  if (ONLY.includes('latency')) {
    // A fresh s3rver: the one the scenarios above filled (gigabytes, as files in one directory)
    // answers every request slower by then, and a single call's latency should be the tools'.
    S3.stop();
    S3 = await startS3rverIn(ROOT, join(WORK, 's3rver-latency'), BUCKET);
    log('latency of single calls (a fresh s3rver)');
    results.latency = latency(src);
  }
  if (ONLY.includes('scanner')) {
    log('scanner throughput');
    results.scanner = await scanner(src);
  }
  results.goals = goals(results);
  writeReport(results);
  log(`wrote ${OUT}`);
  for (const g of results.goals) log(g);
} finally {
  S3.stop();
  if (!flag('--keep')) rmSync(WORK, { recursive: true, force: true });
  else log(`kept ${WORK}`);
}
