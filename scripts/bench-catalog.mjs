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
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3_KEY, startS3rver } from './lib-s3rver.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const WALSHIP = join(ROOT, 'bin', 'walship.js');
const args = process.argv.slice(2);
const opt = (n, d) => (args.includes(n) ? args[args.indexOf(n) + 1] : d);
const N = Number(opt('--segments', 10_000));
const OUT = opt('--out', join(ROOT, 'docs', 'benchmarks.md'));
const SEG = 16 * 1024 * 1024;
const BUCKET = 'bench';
const startedAt = Date.now();
const log = (...m) => console.log(`[bench-catalog ${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)}s]`, ...m);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');

if (!existsSync(join(ROOT, 'dist', 'walship.cjs'))) {
  console.error('bench-catalog: dist/ is missing: build first with `npm run build`');
  process.exit(2);
}
const dist = (p) => import(join(ROOT, 'dist', p));
const { encodeObject, packScan } = await dist('archive/envelope.js');
const { BLOCK_SIZES, blockKey, entryFromMeta } = await dist('archive/index-blocks.js');
const { objectKeyFor } = await dist('archive/keys.js');
const { segmentName } = await dist('wal/names.js');
const { S3Driver } = await dist('storage/s3.js');
const { FsDriver } = await dist('storage/fs.js');
const { resolveConfig } = await dist('config.js');

const WORK = mkdtempSync(join(tmpdir(), 'walship-bench-catalog-'));
const s3env = (endpoint) => ({ AWS_ACCESS_KEY_ID: S3_KEY, AWS_SECRET_ACCESS_KEY: S3_KEY, WALSHIP_S3_ENDPOINT: endpoint, WALSHIP_S3_FORCE_PATH_STYLE: 'on', WALSHIP_S3_REGION: 'us-east-1' });

function walship(argv, env = {}) {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [WALSHIP, ...argv, '--config', '/dev/null'], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 28, timeout: 600_000 });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`walship ${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

// ------------------------------------------------------------------------------------------------
// The synthetic repository.
const PG_EPOCH_MS = Date.UTC(2000, 0, 1);
const T0 = (Date.UTC(2026, 10, 1) - PG_EPOCH_MS) * 1000; // µs since 2000, as WAL carries them

/** A scan as the scanner returns it for a busy-enough segment `k` (timeline 1). */
function scanOf(k) {
  const start = k * SEG;
  const time = T0 + k * 30_000_000;
  const xacts = Array.from({ length: 200 }, (_, i) => ({ lsn: start + 40 + i * 80_000, endLsn: start + 80 + i * 80_000, xid: 1000 + k * 200 + i, kind: i % 25 === 24 ? 'abort' : 'commit', time: time + i * 150_000 }));
  return {
    startLsn: start,
    endLsn: start + SEG,
    endReason: 'segment-end',
    firstRecordLsn: start + 40,
    lastRecordLsn: start + SEG - 200,
    records: 1000,
    headCont: null,
    tailCont: null,
    xacts,
    restorePoints: k % 1000 === 500 ? [{ lsn: start + 100_000, endLsn: start + 100_104, name: `point-${k}`, time: time + 100 }] : [],
    checkpoints: k % 4 === 0 ? [{ lsn: start + 200_000, endLsn: start + 200_120, redo: start + 199_000, time: time + 1_000_000, online: true, tli: 1, prevTli: 1 }] : [],
    endOfRecovery: [],
    backupEnds: [],
    switches: [],
    overwrites: [],
  };
}

const BACKUP_SEGS = [1000, 3000, 5000, 7000, 9000].map((s) => Math.floor((s * N) / 10_000));
const isoOf = (pgMicros) => new Date(PG_EPOCH_MS + pgMicros / 1000).toISOString();
const lsnText = (n) => `${Math.floor(n / 2 ** 32).toString(16).toUpperCase()}/${(n % 2 ** 32).toString(16).toUpperCase()}`;

/** Every object of the repository, as [key, bytes], in a stream of batches. */
async function* repositoryObjects() {
  yield [['identity.json', Buffer.from(JSON.stringify({ format: 1, systemIdentifier: '7000000000000000001', pgMajor: 15, walSegmentSize: SEG, createdAt: new Date().toISOString(), createdBy: 'bench' }))]];
  const body = Buffer.alloc(64);
  let entries = new Map();
  for (let k = 1; k <= N; k += 500) {
    const batch = [];
    for (let s = k; s < Math.min(N + 1, k + 500); s++) {
      const name = segmentName(1, s, SEG);
      const scan = await packScan(scanOf(s));
      const { object, meta } = await encodeObject(
        body,
        { format: 1, name, sha256: 'a'.repeat(64), rawSize: SEG, compression: 'zstd', pushedAt: isoOf(T0 + s * 30_000_000), timeline: 1, systemIdentifier: '7000000000000000001', pgMajor: 15, segSize: SEG, startLsn: s * SEG, scan },
        1,
      );
      batch.push([objectKeyFor({ name, kind: 'segment', timeline: 1 }), object]);
      entries.set(s, entryFromMeta(meta, object.length));
      // The index blocks this segment completes, as push writes them.
      for (const count of BLOCK_SIZES) {
        const first = s - (s % count);
        if (s !== first + count - 1 || first === 0) continue;
        const lines = Buffer.from(Array.from({ length: count }, (_, i) => JSON.stringify(entries.get(first + i))).join('\n') + '\n');
        const key = blockKey(1, first, count, SEG);
        const { object: block } = await encodeObject(lines, { format: 1, name: key, sha256: 'b'.repeat(64), rawSize: lines.length, compression: 'zstd', pushedAt: new Date().toISOString(), timeline: 1 }, 3);
        batch.push([key, block]);
      }
      if (s % 256 === 255) entries = new Map([...entries].filter(([n]) => n > s));
    }
    yield batch;
  }
  const backups = [];
  for (const [i, s] of BACKUP_SEGS.entries()) {
    const id = `20261101T${String(i).padStart(2, '0')}0000Z-${String(1000 + i)}`;
    const start = s * SEG + 28;
    const summary = {
      format: 1, id, label: `nightly ${i}`, systemIdentifier: '7000000000000000001', pgVersion: '15.18', pgMajor: 15,
      startLsn: lsnText(start), stopLsn: lsnText(start + SEG), checkpointLsn: lsnText(start + 96), startTimeline: 1, stopTimeline: 1,
      startTime: isoOf(T0 + s * 30_000_000), stopTime: isoOf(T0 + (s + 1) * 30_000_000 + 1), startWal: segmentName(1, s, SEG), stopWal: segmentName(1, s + 1, SEG),
      files: 980, rawBytes: 23_000_000, storedBytes: 3_000_000, durationMs: 1500, chunks: ['chunk-000001.tar.zst'], backupLabel: '', tablespaceMap: null,
    };
    backups.push([`backups/${id}/started.json`, Buffer.from(JSON.stringify({ format: 1, id, label: summary.label, startLsn: summary.startLsn, startTimeline: 1, startTime: summary.startTime }))]);
    backups.push([`backups/${id}/backup.json`, Buffer.from(JSON.stringify(summary))]);
  }
  yield backups;
}

async function writeRepository(store) {
  const t = Date.now();
  let n = 0;
  for await (const batch of repositoryObjects()) {
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < batch.length) {
          const [key, bytes] = batch[next++];
          await store(key, bytes);
          n++;
        }
      }),
    );
  }
  return { objects: n, secs: (Date.now() - t) / 1000 };
}

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
  const catPath = join(dir, 'million.db');
  const repo = join(dir, 'repo');
  walship(['init', '--repo', repo, '--catalog', catPath]);
  const Database = createRequire(join(ROOT, 'package.json'))('better-sqlite3');
  const db = new Database(catPath);
  const M = 1_000_000;
  const t0 = Date.now();
  db.prepare("UPDATE repository SET system_identifier = '7000000000000000001', pg_major = 15, wal_segment_size = ?, created_at = ?").run(SEG, new Date().toISOString());
  const hex8 = (n) => n.toString(16).toUpperCase().padStart(8, '0');
  const f = db.prepare(
    `INSERT INTO wal_files (name, kind, timeline, seg_no, start_lsn, end_lsn, raw_size, stored_size, sha256, compression, object_key, pushed_at)
     VALUES (?, 'segment', 1, ?, ?, ?, ?, ?, ?, 'zstd', ?, ?)`,
  );
  const s = db.prepare(
    `INSERT INTO wal_scans (file, timeline, seg_no, partial, start_lsn, end_lsn, end_reason, first_record_lsn, last_record_lsn, records,
       commits, aborts, first_xact_time, last_xact_time, min_xact_time, max_xact_time, scanned_at)
     VALUES (?, 1, ?, 0, ?, ?, 'end', ?, ?, 1000, 100, 1, ?, ?, ?, ?, ?)`,
  );
  const epoch = Date.UTC(2026, 0, 1) * 1000;
  const sum = 'a'.repeat(64);
  const insert = db.transaction((from, to) => {
    for (let i = from; i < to; i++) {
      const name = hex8(1) + hex8(Math.floor(i / 256)) + hex8(i % 256);
      const lsn = i * SEG;
      if (i % 100_000 === 99_999) continue;
      f.run(name, i, lsn, lsn + SEG, SEG, 1_400_000, sum, `wal/${name.slice(0, 16)}/${name}.zst`, '2026-01-01T00:00:00.000Z');
      const t = epoch + i * 60_000_000;
      s.run(name, i, lsn, lsn + SEG, lsn + 40, lsn + SEG - 100, t, t + 59_000_000, t, t + 59_000_000, '2026-01-01T00:00:00.000Z');
    }
  });
  for (let i = 1; i < M + 1; i += 50_000) insert(i, Math.min(M + 1, i + 50_000));
  db.close();
  // The repository's identity (its objects are not there: syncing first finds nothing new).
  writeFileSync(join(repo, 'identity.json'), JSON.stringify({ format: 1, systemIdentifier: '7000000000000000001', pgMajor: 15, walSegmentSize: SEG, createdAt: new Date().toISOString(), createdBy: 'bench' }));
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
  results.fsWrite = await writeRepository(async (key, bytes) => {
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
  results.s3Write = await writeRepository((key, bytes) => s3d.replace(key, bytes));
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
const old = existsSync(OUT) ? readFileSync(OUT, 'utf8') : '';
const marked = /<!-- bench-catalog -->[\s\S]*<!-- \/bench-catalog -->\n?/;
writeFileSync(OUT, marked.test(old) ? old.replace(marked, section) : `${old}${old.endsWith('\n') || old === '' ? '' : '\n'}\n${section}`);
log(`wrote ${OUT}`);
for (const g of goals) log(g);
