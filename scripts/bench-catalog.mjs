#!/usr/bin/env node
// Benchmarks of the catalog as a cache of the repository (not tests): rebuilding a catalog from a
// repository of 10,000 segments and 5 backups (filesystem and s3rver), syncing it when nothing is
// new, and `walship ranges` on a synthetic catalog of one million segments. Writes its section of
// docs/benchmarks.md (between the bench-catalog markers; scripts/bench.mjs keeps it as it is).
// Needs a built walship (`npm run build`); no PostgreSQL.
//
//   node scripts/bench-catalog.mjs [--segments N] [--out FILE] [--keep]
//
// The repository is synthetic but made of walship's own objects: each segment's object carries a
// realistic scan (200 transaction ends, a checkpoint every 4 segments, a restore point every 1000),
// a body of a few bytes (a rebuild never reads bodies), and index blocks are written as push
// writes them. The backups are backup.json/started.json documents.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { S3_KEY, startS3rver } from './lib-s3rver.mjs';
import { ROOT, WALSHIP, args, builtWalship, fmt, logger, median, opt, s3env, writeSection } from './lib-bench.mjs';
import { repositoryObjects, syntheticCatalog, writeRepository } from './lib-synthetic.mjs';

const N = Number(opt('--segments', 10_000));
const OUT = opt('--out', join(ROOT, 'docs', 'benchmarks.md'));
const BUCKET = 'bench';
const startedAt = Date.now();
const log = logger('bench-catalog', startedAt);

const dist = builtWalship('bench-catalog');
const { S3Driver } = await dist('storage/s3.js');
const { FsDriver } = await dist('storage/fs.js');
const { resolveConfig } = await dist('config.js');

const WORK = mkdtempSync(join(tmpdir(), 'walship-bench-catalog-'));

function walship(argv, env = {}) {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [WALSHIP, ...argv, '--config', '/dev/null'], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 28, timeout: 600_000 });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`walship ${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

const BACKUP_SEGS = [1000, 3000, 5000, 7000, 9000].map((s) => Math.floor((s * N) / 10_000));

// ------------------------------------------------------------------------------------------------
// Scenarios.

/** Rebuilds into fresh catalogs (3 runs), then syncs the last with nothing new (5 runs). */
function rebuildAndSync(label, repoUrl, env) {
  const rebuilds = [];
  let catalog;
  for (let i = 0; i < 3; i++) {
    catalog = join(WORK, `${label}-${i}.db`);
    const r = walship(['catalog', 'rebuild', '--json', '--repo', repoUrl, '--catalog', catalog], env);
    rebuilds.push({ ...JSON.parse(r.stdout), ms: r.ms });
    log(`  ${label} rebuild ${i + 1}: ${fmt(r.ms / 1000, 2)} s, ${rebuilds[i].files} files, ${rebuilds[i].requests} requests, ${rebuilds[i].blocks} index blocks`);
  }
  const syncs = [];
  for (let i = 0; i < 5; i++) {
    const r = walship(['catalog', 'sync', '--json', '--repo', repoUrl, '--catalog', catalog], env);
    syncs.push({ ...JSON.parse(r.stdout), ms: r.ms });
  }
  // What syncing first adds to a command: ranges with and without it, in turns.
  const withSync = [];
  const without = [];
  for (let i = 0; i < 7; i++) {
    withSync.push(walship(['ranges', '--json', '--repo', repoUrl, '--catalog', catalog], env).ms);
    without.push(walship(['ranges', '--json', '--no-sync', '--repo', repoUrl, '--catalog', catalog], env).ms);
  }
  const out = {
    rebuildMs: median(rebuilds.map((r) => r.ms)),
    rebuildRuns: rebuilds.map((r) => r.ms),
    files: rebuilds[0].files,
    backups: rebuilds[0].backups,
    requests: rebuilds[0].requests,
    blocks: rebuilds[0].blocks,
    syncMs: median(syncs.map((s) => s.ms)),
    syncRequests: syncs[0].requests,
    rangesMs: median(withSync),
    rangesNoSyncMs: median(without),
  };
  log(`  ${label} sync with nothing new: ${fmt(out.syncMs, 0)} ms a command, ${out.syncRequests} requests; ranges ${fmt(out.rangesMs, 0)} ms vs ${fmt(out.rangesNoSyncMs, 0)} ms without syncing`);
  return out;
}

// `walship ranges` on a synthetic catalog of one million segments (one scan row each, a gap every 100,000).
async function ranges() {
  const dir = join(WORK, 'ranges');
  mkdirSync(dir);
  const t0 = Date.now();
  const M = 1_000_000;
  const { catPath, repo } = syntheticCatalog((argv) => walship(argv), dir, M, { gapEvery: 100_000 });
  log(`  synthetic catalog: ${M} segments in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  const times = [];
  for (let i = 0; i < 3; i++) times.push(walship(['ranges', '--json', '--repo', repo, '--catalog', catPath]).ms);
  const cli = await dist('recovery/cli.js');
  const inProc = [];
  for (let i = 0; i < 3; i++) {
    const t = process.hrtime.bigint();
    cli.runRanges({ catalogPath: catPath, repoUrl: `file://${repo}` }, { json: true });
    inProc.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return { segments: M, medianMs: median(times), inProcessMs: median(inProc) };
}

// ------------------------------------------------------------------------------------------------
const results = {};
const s3dir = join(WORK, 's3rver');
const S3 = await startS3rver(ROOT, s3dir, BUCKET);
try {
  const fsRepo = join(WORK, 'repo');
  log(`writing a synthetic repository of ${N} segments and 5 backups (filesystem)`);
  const fsd = new FsDriver(fsRepo);
  await fsd.create();
  results.fsWrite = await writeRepository(repositoryObjects(N, BACKUP_SEGS), async (key, bytes) => {
    mkdirSync(dirname(join(fsRepo, key)), { recursive: true });
    writeFileSync(join(fsRepo, key), bytes);
  });
  log(`  ${results.fsWrite.objects} objects in ${fmt(results.fsWrite.secs, 0)} s`);
  log('rebuild and sync: filesystem');
  results.fs = rebuildAndSync('fs', fsRepo, {});

  log(`writing the same repository to s3rver`);
  const s3cfg = resolveConfig({ flags: {}, env: s3env(S3.endpoint), configPath: '/dev/null' });
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: S3_KEY, AWS_SECRET_ACCESS_KEY: S3_KEY });
  const s3d = new S3Driver(BUCKET, 'synthetic', s3cfg);
  results.s3Write = await writeRepository(repositoryObjects(N, BACKUP_SEGS), (key, bytes) => s3d.replace(key, bytes));
  log(`  ${results.s3Write.objects} objects in ${fmt(results.s3Write.secs, 0)} s`);
  log('rebuild and sync: s3rver');
  results.s3 = rebuildAndSync('s3', `s3://${BUCKET}/synthetic`, s3env(S3.endpoint));

  log('walship ranges on a synthetic catalog of one million segments');
  results.ranges = await ranges();
} finally {
  S3.stop();
  if (!args.includes('--keep')) rmSync(WORK, { recursive: true, force: true });
  else log(`kept ${WORK}`);
}

// ------------------------------------------------------------------------------------------------
const L = ['<!-- bench-catalog -->', '## The catalog as a cache of the repository', ''];
L.push(`Generated by \`node scripts/bench-catalog.mjs\` on ${new Date(startedAt).toISOString().slice(0, 16)}Z, in ${fmt((Date.now() - startedAt) / 60000, 0)} minutes (no PostgreSQL: a synthetic repository of walship's own objects).`);
L.push('');
L.push(
  `The repository: ${N.toLocaleString('en')} segments of 16 MiB on timeline 1, each object with a realistic scan in its metadata (200 transaction ends, a checkpoint every 4 segments, a restore point every 1000) and a body of a few bytes (a rebuild never reads bodies), the index blocks push writes (16 and 256 segments), and 5 walship backups. ` +
    'Each figure is a whole command (node\'s start included); `requests` counts what the storage driver sent (HTTP attempts on S3, operations on a filesystem).',
);
L.push('');
L.push('| | filesystem | s3rver |');
L.push('|---|---:|---:|');
const both = (f) => `| ${f[0]} | ${f[1](results.fs)} | ${f[1](results.s3)} |`;
for (const row of [
  ['`catalog rebuild`, median of 3 (s)', (r) => `**${fmt(r.rebuildMs / 1000, 2)}** (${r.rebuildRuns.map((x) => fmt(x / 1000, 2)).join(', ')})`],
  ['files and backups indexed', (r) => `${r.files.toLocaleString('en')} + ${r.backups}`],
  ['requests of one rebuild (index blocks read)', (r) => `${r.requests.toLocaleString('en')} (${r.blocks})`],
  ['`catalog sync` with nothing new, median of 5 (ms)', (r) => fmt(r.syncMs, 0)],
  ['requests of that sync', (r) => String(r.syncRequests)],
  ['`ranges --json`, median of 7 (ms)', (r) => fmt(r.rangesMs, 0)],
  ['`ranges --json --no-sync`, median of 7 (ms)', (r) => fmt(r.rangesNoSyncMs, 0)],
  ['what syncing first adds to `ranges` (ms)', (r) => `**${fmt(r.rangesMs - r.rangesNoSyncMs, 0)}**`],
]) L.push(both(row));
L.push('');
L.push(
  `\`walship ranges --json\` on a synthetic catalog of ${results.ranges.segments.toLocaleString('en')} segments (one scan row each, a gap every 100,000; its repository holds only its identity, so syncing first lists each gap and the tail and finds nothing new): **${fmt(results.ranges.medianMs, 0)} ms** as a command (median of 3), ${fmt(results.ranges.inProcessMs, 0)} ms inside one process.`,
);
L.push('');
const goals = [
  `catalog rebuild of ${N.toLocaleString('en')} segments, filesystem: ${fmt(results.fs.rebuildMs / 1000, 2)} s — goal ≤ 10 s: **${results.fs.rebuildMs <= 10_000 ? 'met' : 'not met'}**`,
  `catalog rebuild of ${N.toLocaleString('en')} segments, s3rver: ${fmt(results.s3.rebuildMs / 1000, 2)} s, ${results.s3.requests} requests — goal ≤ 30 s: **${results.s3.rebuildMs <= 30_000 ? 'met' : 'not met'}**`,
  `sync with nothing new, filesystem: ${fmt(results.fs.rangesMs - results.fs.rangesNoSyncMs, 0)} ms above the command — goal ≤ 100 ms: **${results.fs.rangesMs - results.fs.rangesNoSyncMs <= 100 ? 'met' : 'not met'}**; on s3rver ${results.s3.syncRequests} requests`,
  `walship ranges on 1,000,000 segments: ${fmt(results.ranges.medianMs, 0)} ms — goal < 200 ms: **${results.ranges.medianMs < 200 ? 'met' : 'not met'}**`,
];
for (const g of goals) L.push(`- ${g}`);
L.push('<!-- /bench-catalog -->');
const section = L.join('\n') + '\n';
writeSection(OUT, 'bench-catalog', section);
log(`wrote ${OUT}`);
for (const g of goals) log(g);
