#!/usr/bin/env node
// Benchmarks of retention and verification (not tests). Writes its section of docs/benchmarks.md
// (between the bench-retention markers; scripts/bench.mjs keeps it as it is).
//
//   node scripts/bench-retention.mjs [--segments N] [--verify-scale S] [--verify-secs T] [--only verify] [--out FILE] [--keep]
//
// 1. `expire --dry-run` on a synthetic catalog of one million segments and 100 backups.
// 2. What expire removes per second from a synthetic repository of N segments (filesystem and
//    s3rver), against removing the same number of objects directly (unlink / DeleteObjects).
// 3. `verify --full` and `verify --deep` on a real PostgreSQL's repository (pgbench WAL and a base
//    backup, checked in depth once by a first `verify`), against `cat` and `zstd -dc` of the same
//    files, warm and cold; `verify` with nothing new.
// Needs a built walship (`npm run build`) and PostgreSQL server binaries for 3.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { S3_KEY, startS3rver } from './lib-s3rver.mjs';
import { ROOT, WALSHIP, args, builtWalship, fmt, logger, median, opt, s3env, writeSection } from './lib-bench.mjs';
import { repositoryObjects, syntheticCatalog, writeRepository } from './lib-synthetic.mjs';
import { Cluster, confString, osUser, userDir } from './lib-pg.mjs';

const N = Number(opt('--segments', 10_000));
const VERIFY_SCALE = Number(opt('--verify-scale', 50));
const VERIFY_SECS = Number(opt('--verify-secs', 30));
const ONLY = opt('--only', null);
const OUT = opt('--out', join(ROOT, 'docs', 'benchmarks.md'));
const BUCKET = 'bench';
const startedAt = Date.now();
const log = logger('bench-retention', startedAt);

const dist = builtWalship('bench-retention');
const { S3Driver } = await dist('storage/s3.js');
const { resolveConfig } = await dist('config.js');

const WORK = mkdtempSync(join(tmpdir(), 'walship-bench-retention-'));

function walship(argv, env = {}, opts = {}) {
  const u = opts.asUser ? osUser() : undefined;
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [WALSHIP, ...argv, '--config', '/dev/null'], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    timeout: 600_000,
    ...(u && { uid: u.uid, gid: u.gid }),
  });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`walship ${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms, stdout: r.stdout };
}
const timed = async (fn) => {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
};

// 1. expire --dry-run on a million segments and 100 backups.
function dryRun() {
  const dir = join(WORK, 'million');
  mkdirSync(dir);
  const t0 = Date.now();
  const { catPath, repo } = syntheticCatalog((argv) => walship(argv), dir, 1_000_000, { backups: 100, xactRows: true });
  log(`  synthetic catalog: 1,000,000 segments and 100 backups in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  const runs = [];
  let doc;
  for (let i = 0; i < 3; i++) {
    const r = walship(['expire', '--dry-run', '--json', '--retain-full', '10', '--repo', repo, '--catalog', catPath]);
    runs.push(r.ms);
    doc = JSON.parse(r.stdout);
  }
  const walFiles = doc.wal.reduce((n, w) => n + w.count, 0);
  log(`  expire --dry-run: ${fmt(median(runs), 0)} ms (${runs.map((x) => fmt(x, 0)).join(', ')}); would remove ${doc.plan.removed.length} backups and ${walFiles} segments`);
  return { ms: median(runs), runs, removedBackups: doc.plan.removed.length, removedWal: walFiles };
}

// 2. What expire removes per second, against removing as many objects directly.
async function removal(label, repoUrl, env, store, baseline) {
  const backupSegs = [Math.floor(N * 0.1), Math.floor(N * 0.9)];
  const w = await writeRepository(repositoryObjects(N, backupSegs), store);
  log(`  ${label}: ${w.objects} objects written in ${fmt(w.secs, 0)} s`);
  const catalog = join(WORK, `${label}.db`);
  walship(['catalog', 'rebuild', '--repo', repoUrl, '--catalog', catalog], env);
  const r = walship(['expire', '--json', '--retain-full', '1', '--repo', repoUrl, '--catalog', catalog], env);
  const doc = JSON.parse(r.stdout);
  const objects = doc.removed.objects;
  const rawMs = await baseline(objects);
  const out = { objects, removeSeconds: doc.removed.seconds, recordSeconds: doc.removed.recordSeconds, commandMs: r.ms, requests: doc.removed.requests, perSecond: objects / doc.removed.seconds, rawPerSecond: objects / (rawMs / 1000) };
  log(`  ${label}: expire removed ${objects} objects in ${fmt(out.removeSeconds, 2)} s (${fmt(out.perSecond, 0)}/s, ${out.requests} requests; the command ${fmt(r.ms / 1000, 2)} s); directly: ${fmt(out.rawPerSecond, 0)}/s`);
  return out;
}

// 3. verify --full and --deep on a real repository, against cat and zstd -dc of its files.
function verifyReal() {
  const base = userDir('bench-verify');
  const repo = join(base, 'repo');
  const catalog = join(base, 'catalog.db');
  const settings = `--repo ${repo} --catalog ${catalog} --config /dev/null`;
  walship(['init', '--repo', repo, '--catalog', catalog], {}, { asUser: true });
  const c = Cluster.init(base, { conf: { archive_mode: 'on', archive_command: confString(`${join(ROOT, 'bin', 'walship')} archive-push %p ${settings}`), max_wal_size: "'1GB'" } });
  c.start();
  try {
    c.pgbench(['-i', '-s', String(VERIFY_SCALE), '-q']);
    const pg = { WALSHIP_PG_HOST: base, WALSHIP_PG_PORT: String(c.port), WALSHIP_PG_USER: 'postgres' };
    walship(['backup', '--repo', repo, '--catalog', catalog], pg, { asUser: true });
    c.pgbench(['-c', '2', '-T', String(VERIFY_SECS), '-n']);
    const last = c.psql('SELECT pg_walfile_name(pg_current_wal_lsn()); SELECT pg_switch_wal();').split('\n')[0];
    for (let i = 0; i < 600 && c.psql('SELECT last_archived_wal FROM pg_stat_archiver') < last; i++) spawnSync('sleep', ['0.2']);
  } finally {
    c.stop();
  }
  const files = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) e.isDirectory() ? walk(join(d, e.name)) : files.push(join(d, e.name));
  };
  walk(repo);
  const bytes = files.reduce((n, f) => n + statSync(f).size, 0);
  const verify = (flags) => {
    const r = walship(['verify', ...flags, '--json', '--repo', repo, '--catalog', catalog], {}, { asUser: true });
    return { ms: r.ms, doc: JSON.parse(r.stdout) };
  };
  const timedSh = (cmd) => {
    const t = process.hrtime.bigint();
    spawnSync('sh', ['-c', cmd]);
    return Number(process.hrtime.bigint() - t) / 1e6;
  };
  const catCmd = `find '${repo}' -type f -exec cat {} + > /dev/null`;
  // What reading the archive back to its content costs at least: zstd -d of every object, one core.
  const unzstdCmd = `find '${repo}' -name '*.zst' -exec zstd -dcq {} + > /dev/null`;
  // The first verify checks everything in depth (and records it): what --full then builds on.
  const first = verify([]);
  const runs = (flags, n) => Array.from({ length: n }, () => verify(flags));
  const full = runs(['--full'], 3);
  const deep = runs(['--deep'], 3);
  const cat = Array.from({ length: 3 }, () => timedSh(catCmd));
  const unzstd = Array.from({ length: 3 }, () => timedSh(unzstdCmd));
  // Cold: the page cache dropped before each (needs root; skipped where the kernel refuses).
  let cold = null;
  if (dropCaches()) {
    const coldCat = timedSh(catCmd);
    dropCaches();
    const coldFull = verify(['--full']).ms;
    dropCaches();
    const coldDeep = verify(['--deep']).ms;
    cold = { catMs: coldCat, fullMs: coldFull, deepMs: coldDeep };
  }
  const incr = runs([], 5).map((r) => r.ms);
  if (!args.includes('--keep')) rmSync(base, { recursive: true, force: true });
  else log(`kept ${base}`);
  const doc = full[0].doc;
  const out = {
    files: files.length,
    mb: bytes / 1e6,
    rawMb: deep[0].doc.checked.rawBytes / 1e6,
    firstRawMb: first.doc.checked.rawBytes / 1e6,
    walFiles: doc.checked.walFiles,
    unchanged: doc.checked.unchanged,
    fullRawMb: doc.checked.rawBytes / 1e6,
    backups: doc.checked.backups,
    failures: Math.max(...[...full, ...deep].map((r) => r.doc.failures)),
    fullMs: median(full.map((r) => r.ms)),
    fullRuns: full.map((r) => r.ms),
    deepMs: median(deep.map((r) => r.ms)),
    catMs: median(cat),
    unzstdMs: median(unzstd),
    incrementalMs: median(incr),
    cold,
  };
  log(`  verify --full: ${fmt(out.mb, 0)} MB in ${fmt(out.fullMs / 1000, 2)} s (${fmt(out.mb / (out.fullMs / 1000), 0)} MB/s); --deep ${fmt(out.deepMs / 1000, 2)} s; cat: ${fmt(out.catMs / 1000, 2)} s (${fmt(out.mb / (out.catMs / 1000), 0)} MB/s); nothing new: ${fmt(out.incrementalMs, 0)} ms` + (cold ? `; cold: cat ${fmt(cold.catMs / 1000, 2)} s, --full ${fmt(cold.fullMs / 1000, 2)} s` : ''));
  return out;
}

function dropCaches() {
  try {
    spawnSync('sync');
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

const results = {};
const S3 = await startS3rver(ROOT, join(WORK, 's3rver'), BUCKET);
try {
  if (ONLY !== 'verify') {
  log('expire --dry-run on one million segments and 100 backups');
  results.dryRun = dryRun();

  log(`expire on a synthetic repository of ${N} segments and 2 backups: filesystem`);
  const fsRepo = join(WORK, 'repo');
  const putFile = (root) => async (key, bytes) => {
    await fsp.mkdir(dirname(join(root, key)), { recursive: true });
    await fsp.writeFile(join(root, key), bytes);
  };
  results.fs = await removal('fs', fsRepo, {}, putFile(fsRepo), async (objects) => {
    // The same number of files, in the same layout, unlinked and their directories synced.
    const copy = join(WORK, 'raw');
    for (let i = 0; i < objects; i++) await putFile(copy)(`wal/${String(Math.floor(i / 256)).padStart(16, '0')}/${String(i).padStart(24, '0')}.zst`, Buffer.alloc(600));
    const dirs = readdirSync(join(copy, 'wal'));
    return timed(async () => {
      for (const d of dirs) {
        const dir = join(copy, 'wal', d);
        for (const f of await fsp.readdir(dir)) await fsp.unlink(join(dir, f));
        const h = await fsp.open(dir, 'r');
        await h.sync();
        await h.close();
      }
    });
  });

  log(`the same on s3rver`);
  const s3cfg = resolveConfig({ flags: {}, env: s3env(S3.endpoint), configPath: '/dev/null' });
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: S3_KEY, AWS_SECRET_ACCESS_KEY: S3_KEY });
  const s3d = new S3Driver(BUCKET, 'synthetic', s3cfg);
  results.s3 = await removal('s3', `s3://${BUCKET}/synthetic`, s3env(S3.endpoint), (key, bytes) => s3d.replace(key, bytes), async (objects) => {
    const raw = new S3Driver(BUCKET, 'raw', s3cfg);
    // The same layout as walship's keys: a directory of 256 segments each.
    const keys = Array.from({ length: objects }, (_, i) => `wal/00000001${String(Math.floor(i / 256)).padStart(8, '0')}/${String(i).padStart(24, '0')}.zst`);
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => { while (next < keys.length) await raw.replace(keys[next++], Buffer.alloc(600)); }));
    // As expire must: list the keys, then remove them.
    return timed(async () => {
      const listed = [];
      for await (const o of raw.list('wal/')) listed.push(o.key);
      await raw.remove(listed);
    });
  });

  }
  log(`verify on a real repository (pgbench, scale ${VERIFY_SCALE}, and a backup): filesystem`);
  results.verify = verifyReal();
} finally {
  S3.stop();
  if (!args.includes('--keep')) rmSync(WORK, { recursive: true, force: true });
  else log(`kept ${WORK}`);
}

const v = results.verify;
const verifyLines = () => {
  const rate = (ms) => fmt(v.mb / (ms / 1000), 0);
  const lines = [
    `\`verify --full\` of a real repository (pgbench scale ${VERIFY_SCALE}, one base backup, then ${VERIFY_SECS} s of pgbench: ${v.walFiles} WAL files, ${v.backups} backup, ${v.files} objects, ${fmt(v.mb, 0)} MB stored; ${v.failures} problems found), after a first \`verify\` checked everything in depth (${fmt(v.firstRawMb, 0)} MB decompressed): median of 3 **${fmt(v.fullMs / 1000, 2)} s, ${rate(v.fullMs)} MB/s** (${v.fullRuns.map((x) => fmt(x / 1000, 2)).join(', ')}). It reads every stored byte and proves each object unchanged by its recorded checksums (${v.unchanged} of ${v.walFiles} WAL files, every chunk; ${fmt(v.fullRawMb, 1)} MB decompressed). Of that, ${fmt(v.incrementalMs / 1000, 2)} s is what every verify costs (node's start, the sync, the planner's view; \`verify\` with nothing new, median of 5): the reading itself goes at ${fmt(v.mb / ((v.fullMs - v.incrementalMs) / 1000), 0)} MB/s, bound by the SHA-256 of every stored byte (about 1 GB/s per core on this machine) when the page cache is warm, by the disk when it is not.`,
    '',
    `\`verify --deep\` (everything decompressed and checked in depth again: ${fmt(v.rawMb, 0)} MB of WAL and backup content, every record's CRC, every piece's SHA-256, on both cores): ${fmt(v.deepMs / 1000, 2)} s, ${rate(v.deepMs)} MB/s stored, ${fmt(v.rawMb / (v.deepMs / 1000), 0)} MB/s of content. \`cat\` of the same files (page cache warm): ${fmt(v.catMs / 1000, 2)} s, ${rate(v.catMs)} MB/s; \`zstd -dc\` of them (back to their content and no more, one core): ${fmt(v.unzstdMs / 1000, 2)} s, ${rate(v.unzstdMs)} MB/s.`,
  ];
  if (v.cold) {
    lines.push('', `With the page cache dropped before each (the repository read from the disk): \`cat\` ${fmt(v.cold.catMs / 1000, 2)} s (${rate(v.cold.catMs)} MB/s), \`verify --full\` ${fmt(v.cold.fullMs / 1000, 2)} s (${rate(v.cold.fullMs)} MB/s, node's start and the catalog included), \`verify --deep\` ${fmt(v.cold.deepMs / 1000, 2)} s (${rate(v.cold.deepMs)} MB/s).`);
  }
  return lines;
};
const verifyGoals = () => [
  `incremental verify with nothing new: ${fmt(v.incrementalMs, 0)} ms — goal ≤ 1 s: **${v.incrementalMs <= 1000 ? 'met' : 'not met'}**`,
  `verify --full: ${fmt(v.mb / (v.fullMs / 1000), 0)} MB/s against cat's ${fmt(v.mb / (v.catMs / 1000), 0)} MB/s with a warm cache (${fmt((v.catMs / v.fullMs) * 100, 0)}%)` +
    (v.cold ? `; cold: ${fmt(v.mb / (v.cold.fullMs / 1000), 0)} MB/s against ${fmt(v.mb / (v.cold.catMs / 1000), 0)} MB/s (${fmt((v.cold.catMs / v.cold.fullMs) * 100, 0)}%)` : '') +
    `; --deep ${fmt(v.mb / (v.deepMs / 1000), 0)} MB/s against zstd -dc's ${fmt(v.mb / (v.unzstdMs / 1000), 0)} MB/s`,
];
if (ONLY === 'verify') {
  for (const l of [...verifyLines(), ...verifyGoals()]) if (l) log(l);
  process.exit(0);
}
const L = ['<!-- bench-retention -->', '## Retention and verification', ''];
L.push(`Generated by \`node scripts/bench-retention.mjs\` on ${new Date(startedAt).toISOString().slice(0, 16)}Z, in ${fmt((Date.now() - startedAt) / 60000, 0)} minutes. Each figure is a whole command (node's start included) unless it says otherwise.`);
L.push('');
L.push(
  `- \`expire --dry-run --retain-full 10\` on a synthetic catalog of 1,000,000 segments and 100 backups (it plans removing ${results.dryRun.removedBackups} backups and ${results.dryRun.removedWal.toLocaleString('en')} segments, and proves the kept windows unchanged): **${fmt(results.dryRun.ms / 1000, 2)} s** (median of 3: ${results.dryRun.runs.map((x) => fmt(x / 1000, 2)).join(', ')}).`,
);
L.push('');
L.push(`\`expire --retain-full 1\` on a synthetic repository of ${N.toLocaleString('en')} segments (walship's own objects, with index blocks) and 2 backups, against removing as many objects directly from the same store:`);
L.push('');
L.push('| | filesystem | s3rver |');
L.push('|---|---:|---:|');
const both = (name, f) => L.push(`| ${name} | ${f(results.fs)} | ${f(results.s3)} |`);
both('objects removed', (r) => r.objects.toLocaleString('en'));
both('removing the objects (s)', (r) => fmt(r.removeSeconds, 2));
both('before it: the record stored, the catalog updated (s)', (r) => fmt(r.recordSeconds, 2));
both('whole command, with sync and plan (s)', (r) => fmt(r.commandMs / 1000, 2));
both('requests of the removal', (r) => r.requests.toLocaleString('en'));
both('expire: objects/s', (r) => `**${fmt(r.perSecond, 0)}**`);
both('directly (readdir, unlink, directory fsync / listing, DeleteObjects of 1000): objects/s', (r) => fmt(r.rawPerSecond, 0));
both('expire / directly', (r) => `${fmt(r.perSecond / r.rawPerSecond, 2)}×`);
L.push('');
for (const l of verifyLines()) L.push(l);
L.push('');
const goals = [
  `expire --dry-run on 1M segments and 100 backups: ${fmt(results.dryRun.ms / 1000, 2)} s — goal ≤ 2 s: **${results.dryRun.ms <= 2000 ? 'met' : 'not met'}**`,
  ...verifyGoals(),
  `deletion: ${fmt(results.fs.perSecond / results.fs.rawPerSecond, 2)}× the direct rate on the filesystem, ${fmt(results.s3.perSecond / results.s3.rawPerSecond, 2)}× on s3rver`,
];
for (const g of goals) L.push(`- ${g}`);
L.push('<!-- /bench-retention -->');
const section = L.join('\n') + '\n';
writeSection(OUT, 'bench-retention', section);
log(`wrote ${OUT}`);
for (const g of goals) log(g);
