#!/usr/bin/env node
// What `walship drill` measures on this host (not a test): a real PostgreSQL with pgbench data
// archiving into a filesystem repository, a backup, pgbench load on top, then drills to the end
// of the archive and to random moments. Side by side, the same recovery by hand with pgBackRest
// (archive_command pushes to both; a full backup each; restore to the end of the archive, start,
// wait for the promotion). Writes its section of docs/benchmarks.md (between the bench-drill
// markers; scripts/bench.mjs keeps it as it is).
//
//   node scripts/bench-drill.mjs [--scale N] [--load SECONDS] [--rounds N] [--out FILE] [--keep]
//
// Needs a built walship (`npm run build`), PostgreSQL server binaries, pgbench and pgbackrest
// (apt-get install pgbackrest); run as root (PostgreSQL, walship and pgBackRest run as an
// unprivileged user).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, WALSHIP, args, builtWalship, fmt, logger, median, opt, writeSection } from './lib-bench.mjs';
import { Cluster, asUser, confString, osUser, userDir } from './lib-pg.mjs';

const SCALE = Number(opt('--scale', 20));
const LOAD = Number(opt('--load', 30));
const ROUNDS = Number(opt('--rounds', 2));
const OUT = opt('--out', join(ROOT, 'docs', 'benchmarks.md'));
const startedAt = Date.now();
const log = logger('bench-drill', startedAt);
builtWalship('bench-drill');

const WORK = userDir('bench-drill');
const repo = join(WORK, 'repo');
const catalog = join(WORK, 'catalog.db');

function walship(argv, { allowFail = false } = {}) {
  const u = osUser();
  const r = spawnSync(process.execPath, [WALSHIP, ...argv, '--repo', repo, '--catalog', catalog, '--config', '/dev/null'], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    timeout: 3_600_000,
    uid: u.uid,
    gid: u.gid,
    cwd: WORK,
  });
  if (r.status !== 0 && !allowFail) throw new Error(`walship ${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r;
}

/** A pgBackRest configuration for this cluster (zstd, async archive-get with a queue as deep as walship's prefetch). */
function pgbConf(name, dataDir, pg) {
  const d = join(WORK, `pgbackrest-${name}`);
  for (const sub of ['log', 'lock', 'spool']) mkdirSync(join(d, sub), { recursive: true });
  const conf = join(d, 'pgbackrest.conf');
  writeFileSync(conf, ['[global]', `repo1-path=${join(WORK, 'pgbackrest-repo')}`, 'compress-type=zst', `log-path=${join(d, 'log')}`, `lock-path=${join(d, 'lock')}`, `spool-path=${join(d, 'spool')}`,
    'log-level-console=warn', 'log-level-file=off', 'archive-async=y', 'process-max=2', 'archive-get-queue-max=268435456', '', '[bench]', `pg1-path=${dataDir}`,
    ...(pg ? [`pg1-socket-path=${pg.base}`, `pg1-port=${pg.port}`, 'pg1-user=postgres'] : []), ''].join('\n'));
  spawnSync('chown', ['-R', `${osUser().uid}:${osUser().gid}`, d]);
  return conf;
}
const pgbackrest = (conf, argv) => asUser('pgbackrest', [`--config=${conf}`, '--stanza=bench', ...argv], { cwd: WORK });

/** pgBackRest's restore to the end of the archive, and the server started on it until promotion (seconds). */
function pgbackrestRecovery() {
  const base = join(WORK, 'pgbackrest-restored');
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base);
  spawnSync('chown', [`${osUser().uid}:${osUser().gid}`, base]);
  const data = join(base, 'data');
  const conf = pgbConf('restore', data);
  const t0 = Date.now();
  pgbackrest(conf, ['restore', '--process-max=2']);
  const restore = (Date.now() - t0) / 1000;
  const r = new Cluster(base);
  // As walship drill starts its server: a private socket, no archiving.
  r.conf({ listen_addresses: "''", port: r.port, unix_socket_directories: `'${base}'`, archive_mode: 'off', hot_standby: 'off' });
  const t1 = Date.now();
  r.start();
  // With hot_standby off the server accepts connections once it is promoted.
  const promoted = () => {
    try {
      return r.psql('SELECT pg_is_in_recovery()') === 'f';
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 6000 && !promoted(); i++) spawnSync('sleep', ['0.1']);
  const replay = (Date.now() - t1) / 1000;
  r.stop('immediate');
  rmSync(base, { recursive: true, force: true });
  return { restore, replay };
}

const drills = [];
const others = [];
let sizes = {};
const withPgbackrest = existsSync('/usr/bin/pgbackrest') && !args.includes('--no-pgbackrest');
const c = Cluster.init(join(WORK, 'pg'), { conf: { max_wal_size: "'1GB'" } });
const srcConf = withPgbackrest ? pgbConf('primary', c.data, c) : null;
const walshipPush = `${process.execPath} ${WALSHIP} archive-push %p --repo ${repo} --catalog ${catalog} --config /dev/null`;
c.conf({ archive_mode: 'on', archive_command: confString(srcConf ? `${walshipPush} && pgbackrest --config=${srcConf} --stanza=bench archive-push %p` : walshipPush) });
try {
  walship(['init']);
  c.start();
  if (srcConf) pgbackrest(srcConf, ['stanza-create']);
  log(`pgbench -i -s ${SCALE}`);
  c.pgbench(['-i', '-s', String(SCALE), '-q']);
  log('walship backup');
  const pgEnv = ['--pg-host', c.base, '--pg-port', String(c.port), '--pg-user', 'postgres'];
  const backup = JSON.parse(walship(['backup', '--json', ...pgEnv]).stdout);
  if (srcConf) {
    log('pgbackrest backup (full)');
    pgbackrest(srcConf, ['backup', '--type=full', '--process-max=2']);
  }
  log(`pgbench for ${LOAD} s`);
  c.pgbench(['-c', '2', '-T', String(LOAD), '-n']);
  c.psql('SELECT pg_switch_wal()');
  // Everything .ready archived.
  for (let i = 0; i < 600 && c.psql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'") !== '0'; i++) spawnSync('sleep', ['0.5']);
  sizes = { backupMiB: backup.rawBytes / 1048576 };
  for (let i = 0; i < ROUNDS; i++) {
    for (const target of [[], ['--random-target']]) {
      log(`walship drill ${target.join(' ') || '(latest)'}`);
      const r = walship(['drill', '--json', '--workdir', WORK, ...target], { allowFail: true });
      const d = JSON.parse(r.stdout);
      if (d.verdict !== 'passed') throw new Error(`the drill failed: ${d.failure}`);
      drills.push({ kind: target.length ? 'random' : 'latest', ...d.durations, walMiB: d.walReplayedBytes / 1048576 });
      log(`  restore ${fmt(d.durations.restore)} s, replay ${fmt(d.durations.replay)} s (${fmt(d.walReplayedBytes / 1048576, 0)} MiB of WAL), checks ${fmt(d.durations.checks)} s, total ${fmt(d.durations.total)} s`);
    }
    if (withPgbackrest) {
      log('pgbackrest restore and recovery to the end of the archive');
      const o = pgbackrestRecovery();
      others.push(o);
      log(`  restore ${fmt(o.restore)} s, replay ${fmt(o.replay)} s`);
    }
  }
} finally {
  c.stop('immediate');
  if (!args.includes('--keep')) rmSync(WORK, { recursive: true, force: true });
  else log(`kept ${WORK}`);
}

const rows = ['latest', 'random'].map((kind) => {
  const ds = drills.filter((d) => d.kind === kind);
  const m = (k) => median(ds.map((d) => d[k]));
  return `| ${kind === 'latest' ? 'end of the archive' : 'random moment (`--random-target`)'} | ${fmt(m('restore'))} s (${fmt(sizes.backupMiB / m('restore'), 0)} MiB/s) | ${fmt(m('replay'))} s | ${fmt(m('walMiB'), 0)} MiB | ${fmt(m('checks'))} s | ${fmt(m('total'))} s |`;
});
const latest = drills.filter((d) => d.kind === 'latest');
const mine = { restore: median(latest.map((d) => d.restore)), replay: median(latest.map((d) => d.replay)) };
const theirs = others.length ? { restore: median(others.map((o) => o.restore)), replay: median(others.map((o) => o.replay)) } : null;
const L = ['<!-- bench-drill -->', '## Restore drills', ''];
L.push(`Generated by \`node scripts/bench-drill.mjs\` on ${new Date(startedAt).toISOString().slice(0, 16)}Z, in ${fmt((Date.now() - startedAt) / 60000, 0)} minutes.`);
L.push(`PostgreSQL with pgbench data (scale ${SCALE}, a backup of ${fmt(sizes.backupMiB, 0)} MiB), then ${LOAD} s of pgbench (2 clients) on top, archived into a filesystem repository on this host's disk; each drill restores the backup, recovers it with a throwaway server and checks it (pg_amcheck over every database, count(*) of every table). Medians of ${ROUNDS} drills each; what \`walship drill\` reports as this host's recovery time.`);
L.push('', '| drill | restore | replay (server start to promotion) | WAL replayed | checks | total |', '|---|---|---|---|---|---|', ...rows);
if (theirs) {
  L.push(
    '',
    `The same recovery to the end of the archive by hand with pgBackRest ${asUser('pgbackrest', ['version']).stdout.trim().split(' ')[1]} (zstd, async archive-get, process-max 2, the same server settings), medians of ${others.length}:`,
    '',
    '| | restore | replay | restore + replay | walship / pgBackRest |',
    '|---|---|---|---|---|',
    `| walship (drill) | ${fmt(mine.restore)} s | ${fmt(mine.replay)} s | ${fmt(mine.restore + mine.replay)} s | ${fmt((mine.restore + mine.replay) / (theirs.restore + theirs.replay), 2)} |`,
    `| pgBackRest | ${fmt(theirs.restore)} s | ${fmt(theirs.replay)} s | ${fmt(theirs.restore + theirs.replay)} s | |`,
  );
}
L.push('<!-- /bench-drill -->', '');
writeSection(OUT, 'bench-drill', L.join('\n'));
log(`wrote ${OUT}`);
