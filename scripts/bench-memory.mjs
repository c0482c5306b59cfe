#!/usr/bin/env node
// Memory of walship's processes with large WAL segments (a benchmark, not a test). Writes its
// section of docs/benchmarks.md (between the bench-memory markers; scripts/bench.mjs keeps it).
//
//   node scripts/bench-memory.mjs [--sizes 16,64,1024,1024@192MB] [--segments 8] [--backup-scale 30] [--out FILE] [--keep]
//   (SIZE@MEMORY: that segment size with memory_max = MEMORY; else its default)
//
// Per segment size (initdb --wal-segsize): a base backup (pg_basebackup -X stream), then a backlog
// of N full segments while archive_command is empty (1 MiB messages of hex text: about half of
// it compresses away), then
//   1. catch-up: archive_command = walship archive-push through bin/walship (the agent's client),
//      timed from the reload until pg_stat_archiver has archived the backlog;
//   2. recovery: the base backup recovered to the end of the archive through walship
//      archive-fetch, timed from the server's start until it is promoted.
// While each runs, the resident memory (VmRSS) of every walship process (clients, calls in node,
// the agent and its helpers) is read every 50 ms and summed; the peak of that sum is reported,
// with the time and the rate in segment bytes per second. Then `walship backup` and `walship
// restore` of a pgbench database (scale --backup-scale, 16 MiB segments), measured the same way.
// Needs root, PostgreSQL server binaries
// and a built walship (`npm run build`).
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, args, builtWalship, fmt, logger, opt, writeSection } from './lib-bench.mjs';
import { Cluster, asUser, confString, osUser, userDir } from './lib-pg.mjs';

const SIZES = opt('--sizes', '16,64,1024,1024@192MB').split(',').map((s) => ({ mb: Number(s.split('@')[0]), memoryMax: s.split('@')[1] })).filter((s) => s.mb > 0);
const SEGMENTS = Number(opt('--segments', 8));
const BACKUP_SCALE = Number(opt('--backup-scale', 30));
const OUT = opt('--out', join(ROOT, 'docs', 'benchmarks.md'));
const KEEP = args.includes('--keep');
const startedAt = Date.now();
const log = logger('bench-memory', startedAt);
builtWalship('bench-memory');

const MiB = 1024 * 1024;
const CMD = join(ROOT, 'bin', 'walship');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The pids of walship's processes: anything run from this checkout's bin/ or dist/ (with `cmds`, pid → its first arguments). */
function walshipPids(cmds) {
  const marks = [join(ROOT, 'bin') + '/', join(ROOT, 'dist') + '/'];
  const out = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (marks.some((m) => cmd.includes(m))) {
        out.push(Number(e));
        // What it runs: the walship command (a client's argv starts with the client itself).
        const argv = cmd.split('\0');
        const at = argv.findIndex((a) => marks.some((m) => a.startsWith(m)));
        // PostgreSQL's shell running archive_command or restore_command names walship in its script.
        cmds?.set(Number(e), /(^|\/)(ba|da)?sh$/.test(argv[0] ?? '') ? 'sh' : `${argv[at]?.split('/').pop()} ${argv[at + 1] ?? ''}`.trim());
      }
    } catch {
      /* gone */
    }
  }
  return out;
}

const rssKb = (pid) => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
};

/** Samples the summed RSS of walship's processes until stop() is called; the peak (MiB) and the most processes at once. */
function sampler() {
  let peak = 0;
  let most = 0;
  let running = true;
  let atPeak = '';
  const loop = (async () => {
    while (running) {
      const cmds = new Map();
      const pids = walshipPids(cmds);
      const each = pids.map((p) => [p, rssKb(p)]);
      const sum = each.reduce((s, [, kb]) => s + kb, 0);
      if (sum > peak) atPeak = each.map(([p, kb]) => `${cmds.get(p)} ${Math.round(kb / 1024)}`).join(', ');
      peak = Math.max(peak, sum);
      most = Math.max(most, pids.length);
      await sleep(50);
    }
  })();
  return async () => {
    running = false;
    await loop;
    return { peakMiB: peak / 1024, most, atPeak };
  };
}

async function until(what, fn, timeoutMs = 1_800_000) {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function one({ mb, memoryMax }) {
  const base = userDir(`bench-memory-${mb}`);
  const repo = join(base, 'repo');
  const catalog = join(base, 'catalog', 'walship.db');
  const settings = `--repo ${repo} --catalog ${catalog} --config /dev/null${memoryMax ? ` --memory-max ${memoryMax}` : ''}`;
  const segSize = mb * MiB;
  asUser(process.execPath, [join(ROOT, 'bin', 'walship.js'), 'init', ...settings.split(' ')]);
  const pg = Cluster.init(join(base, 'pg'), {
    walSegSizeMb: mb,
    conf: { archive_mode: 'on', archive_command: "''", max_wal_size: `'${Math.max(4 * mb, 1024)}MB'`, min_wal_size: `'${2 * mb}MB'`, checkpoint_timeout: "'1h'", logging_collector: 'off' },
  });
  pg.start();
  const backup = join(base, 'backup');
  asUser(join(pg.bin, 'pg_basebackup'), ['-h', pg.base, '-p', String(pg.port), '-U', 'postgres', '-D', backup, '-X', 'stream', '-c', 'fast', '--no-sync']);
  // The backlog: N full segments of 1 MiB messages, then a switch.
  pg.psql("CREATE TABLE blob AS SELECT string_agg(md5(g::text), '') AS v FROM generate_series(1, 32768) g");
  const start = Number(pg.psql("SELECT pg_current_wal_lsn() - '0/0'"));
  const firstSeg = Math.floor(start / segSize) + 1;
  const endLsn = (firstSeg + SEGMENTS) * segSize;
  log(`${mb} MiB: writing ${SEGMENTS} segments`);
  for (;;) {
    const at = Number(pg.psql("SELECT pg_current_wal_lsn() - '0/0'"));
    if (at >= endLsn) break;
    const n = Math.min(256, Math.ceil((endLsn - at) / MiB) + 1);
    pg.psql(`SELECT count(pg_logical_emit_message(false, 'bench', (SELECT v FROM blob))) FROM generate_series(1, ${n})`);
  }
  const last = pg.psql('SELECT pg_walfile_name(pg_switch_wal())');
  const ready = () => readdirSync(join(pg.data, 'pg_wal', 'archive_status')).filter((f) => f.endsWith('.ready')).length;
  const backlog = ready();
  const bytes = backlog * segSize;
  log(`${mb} MiB: backlog of ${backlog} segments (${last} the last); catch-up`);

  // 1. catch-up
  const stopCatch = sampler();
  const t0 = Date.now();
  pg.psql(`ALTER SYSTEM SET archive_command = ${confString(`${CMD} archive-push %p ${settings}`)}; SELECT pg_reload_conf();`);
  await until('the backlog to be archived', () => pg.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= last && ready() === 0);
  const catchMs = Date.now() - t0;
  const catchMem = await stopCatch();
  const failed = Number(pg.psql('SELECT failed_count FROM pg_stat_archiver'));
  pg.stop();
  // Let the agent go idle and exit before recovery is measured (its idle exit is walship's business; kill what is left).
  await sleep(500);
  for (const p of walshipPids()) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  await sleep(500);

  // 2. recovery
  const data = join(base, 'recovered');
  cpSync(backup, data, { recursive: true });
  spawnSync('chown', ['-R', `${osUser().uid}:${osUser().gid}`, data]);
  const rec = new Cluster(join(base, 'recovered-pg'));
  rec.data = data;
  rec.base = base;
  rec.conf({ port: rec.port, unix_socket_directories: `'${base}'`, archive_mode: 'off', restore_command: confString(`${CMD} archive-fetch %f %p ${settings}`), logging_collector: 'off', recovery_target_timeline: "'current'" });
  writeFileSync(join(data, 'recovery.signal'), '');
  spawnSync('chown', [`${osUser().uid}:${osUser().gid}`, join(data, 'recovery.signal')]);
  const stopRec = sampler();
  const t1 = Date.now();
  asUser(join(rec.bin, 'pg_ctl'), ['-D', data, '-l', join(base, 'recovered.log'), '-s', '-t', '1800', 'start']);
  await until('promotion', () => {
    try {
      return rec.psql('SELECT pg_is_in_recovery()') === 'f';
    } catch {
      return false;
    }
  });
  const recMs = Date.now() - t1;
  const recMem = await stopRec();
  rec.stop();
  if (!KEEP) rmSync(base, { recursive: true, force: true });
  const row = { mb, memoryMax, backlog, bytes, catchMs, catchMem, failed, recMs, recMem };
  log(`${mb} MiB:`, JSON.stringify(row));
  return row;
}

/** walship backup, then walship restore of it, of a pgbench database at BACKUP_SCALE. */
async function backupRestore() {
  const base = userDir('bench-memory-backup');
  const repo = join(base, 'repo');
  const catalog = join(base, 'catalog', 'walship.db');
  const settings = ['--repo', repo, '--catalog', catalog, '--config', '/dev/null'];
  asUser(process.execPath, [join(ROOT, 'bin', 'walship.js'), 'init', ...settings]);
  const pg = Cluster.init(join(base, 'pg'), { conf: { archive_mode: 'on', archive_command: confString(`${CMD} archive-push %p ${settings.join(' ')}`), max_wal_size: "'1GB'", logging_collector: 'off' } });
  pg.start();
  pg.pgbench(['-i', '-s', String(BACKUP_SCALE), '-q']);
  const dbBytes = Number(pg.psql('SELECT sum(pg_database_size(oid)) FROM pg_database'));
  const env = { WALSHIP_PG_HOST: pg.base, WALSHIP_PG_PORT: String(pg.port), WALSHIP_PG_USER: 'postgres' };
  const run = async (argv) => {
    const stop = sampler();
    const t = Date.now();
    const { spawn } = await import('node:child_process');
    const u = osUser();
    const code = await new Promise((resolve) => {
      const p = spawn(process.execPath, [join(ROOT, 'bin', 'walship.js'), ...argv, ...settings], { uid: u.uid, gid: u.gid, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
      p.on('exit', resolve);
    });
    const ms = Date.now() - t;
    const mem = await stop();
    if (code !== 0) throw new Error(`walship ${argv[0]} exited ${code}`);
    return { ms, mem };
  };
  log(`backup of ${fmt(dbBytes / MiB, 0)} MiB`);
  const backup = await run(['backup', '--parallel', '2']);
  const restore = await run(['restore', '--pgdata', join(base, 'restored'), '--parallel', '2']);
  pg.stop();
  if (!KEEP) rmSync(base, { recursive: true, force: true });
  const out = { dbBytes, backup, restore };
  log('backup and restore:', JSON.stringify(out));
  return out;
}

const rows = [];
for (const mb of SIZES) rows.push(await one(mb));
const br = BACKUP_SCALE > 0 ? await backupRestore() : null;

const rate = (bytes, ms) => fmt(bytes / MiB / (ms / 1000), 0);
const ref = rows.find((r) => r.mb === 16 && !r.memoryMax) ?? rows[0];
const section = `<!-- bench-memory -->
## Memory with large segments (\`npm run bench:memory\`)

A backlog of ${SEGMENTS} full segments (1 MiB messages of hex text, about half of it compressible; the backlog also holds the few segments that initdb and the base backup ended early with a switch) archived through PostgreSQL's archiver, then a base backup recovered through restore_command to the end of the archive, per segment size (\`initdb --wal-segsize\`). Memory is the peak of the summed resident memory of every walship process at once (clients, calls in node, the agent and its helpers), read every 50 ms; the rate is segment bytes per second. memory_max's default is 512 MiB.

| segment size (memory_max) | backlog | catch-up | rate | peak memory | recovery | rate | peak memory |
|---|---|---|---|---|---|---|---|
${rows
  .map(
    (r) =>
      `| ${r.mb} MiB (${r.memoryMax ?? 'default'}) | ${r.backlog} segments | ${fmt(r.catchMs / 1000)} s${r.failed ? ` (${r.failed} failed calls)` : ''} | ${rate(r.bytes, r.catchMs)} MiB/s | ${fmt(r.catchMem.peakMiB, 0)} MiB (${r.catchMem.most} processes) | ${fmt(r.recMs / 1000)} s | ${rate(r.bytes, r.recMs)} MiB/s | ${fmt(r.recMem.peakMiB, 0)} MiB (${r.recMem.most} processes) |`,
  )
  .join('\n')}

Against ${ref.mb} MiB segments: ${rows
  .filter((r) => r !== ref)
    .map((r) => `${r.mb} MiB${r.memoryMax ? ` with memory_max ${r.memoryMax}` : ''} peaks at ${fmt(r.catchMem.peakMiB / ref.catchMem.peakMiB, 2)}× in catch-up and ${fmt(r.recMem.peakMiB / ref.recMem.peakMiB, 2)}× in recovery`)
  .join('; ')}.

What the peaks were made of (the process, MiB): ${rows.map((r) => `${r.mb} MiB${r.memoryMax ? ` (${r.memoryMax})` : ''} catch-up: ${r.catchMem.atPeak}; recovery: ${r.recMem.atPeak}`).join('. ')}.
${
  br
    ? `
\`walship backup --parallel 2\` of a pgbench database of ${fmt(br.dbBytes / MiB, 0)} MiB (scale ${BACKUP_SCALE}; chunks of 64 MiB): ${fmt(br.backup.ms / 1000)} s, peak ${fmt(br.backup.mem.peakMiB, 0)} MiB (${br.backup.mem.atPeak}). \`walship restore --parallel 2\` of it: ${fmt(br.restore.ms / 1000)} s, peak ${fmt(br.restore.mem.peakMiB, 0)} MiB (${br.restore.mem.atPeak}). Their memory is set by --parallel (chunks in flight), not by memory_max.
`
    : ''
}<!-- /bench-memory -->
`;
writeSection(OUT, 'bench-memory', section);
log(`wrote ${OUT}`);
console.log(section);
