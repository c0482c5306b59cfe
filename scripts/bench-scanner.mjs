#!/usr/bin/env node
// WAL scanner throughput (src/wal/scanner.ts, built into dist/ by `npm run build`) on real
// 16 MiB segments: every record's CRC-32C checked, transaction ends and the like decoded.
// Usage: node scripts/bench-scanner.mjs [dir-with-segments]
// Without a directory, generates WAL with pgbench in a temporary cluster (about a minute).
import { readdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(root, 'dist', 'wal', 'scanner.js'))) {
  console.error('dist/wal/scanner.js is missing: build first with `npm run build`');
  process.exit(2);
}
const { scanSegment } = await import(join(root, 'dist', 'wal', 'scanner.js'));
const { inspectFirstPage } = await import(join(root, 'dist', 'wal', 'page.js'));
const { parseWalFileName, segNoFromLogSeg } = await import(join(root, 'dist', 'wal', 'names.js'));

let dir = process.argv[2];
let cleanup = () => {};
if (!dir) {
  const { Cluster, confString, userDir } = await import('./lib-pg.mjs');
  const base = userDir('bench-scanner');
  dir = join(base, 'wal');
  const c = Cluster.init(base, {
    conf: { archive_mode: 'on', archive_command: confString(`mkdir -p ${dir} && cp %p ${dir}/%f`), max_wal_size: '1GB' },
  });
  c.start();
  try {
    c.pgbench(['-i', '-s', '10', '-q']);
    c.pgbench(['-c', '2', '-T', '20', '-n']);
    c.psql('SELECT pg_switch_wal()');
    c.psql('SELECT pg_sleep(2)');
  } finally {
    c.stop();
  }
  cleanup = () => rmSync(base, { recursive: true, force: true });
}

try {
  const names = readdirSync(dir)
    .filter((f) => /^[0-9A-F]{24}$/.test(f))
    .sort();
  const segs = [];
  for (const name of names) {
    const buf = readFileSync(join(dir, name));
    const file = parseWalFileName(name);
    const h = inspectFirstPage(buf, file);
    if (buf.length !== h.segSize) continue;
    segs.push({ name, buf, segSize: h.segSize, pgMajor: h.pgMajor, startLsn: segNoFromLogSeg(file.logSeg, h.segSize) * h.segSize });
  }
  // The last (up to) 12 segments: pgbench transactions (small records), after the data load.
  const use = segs.slice(-12);
  if (use.length === 0) throw new Error(`no full segments in ${dir}`);
  const total = use.reduce((a, s) => a + s.buf.length, 0);

  const runOnce = () => {
    let carry = null;
    let records = 0;
    let xacts = 0;
    let problems = 0;
    const perSeg = [];
    const t0 = process.hrtime.bigint();
    for (const s of use) {
      const ts = process.hrtime.bigint();
      const r = scanSegment(s.buf, { segSize: s.segSize, startLsn: s.startLsn, pgMajor: s.pgMajor, carry });
      perSeg.push({ secs: Number(process.hrtime.bigint() - ts) / 1e9, records: r.records });
      carry = r.tailCont;
      records += r.records;
      xacts += r.xacts.length;
      if (r.corruption || !r.complete) problems++;
    }
    return { secs: Number(process.hrtime.bigint() - t0) / 1e9, records, xacts, problems, perSeg };
  };

  runOnce(); // warm-up (JIT)
  const runs = [];
  for (let i = 0; i < 7; i++) runs.push(runOnce());
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const medSecs = median(runs.map((r) => r.secs));
  const med = runs.find((r) => r.secs === medSecs);
  const best = Math.min(...runs.map((r) => r.secs));
  console.log(`${use.length} segments of ${use[0].segSize / 1048576} MiB (${(total / 1048576).toFixed(0)} MiB), PostgreSQL ${use[0].pgMajor}`);
  console.log(`${med.records} records, ${med.xacts} transaction ends, ${med.problems} segments not complete/corrupt`);
  console.log(
    `scan: ${(total / 1e6 / medSecs).toFixed(0)} MB/s median of ${runs.length} (best ${(total / 1e6 / best).toFixed(0)} MB/s), ` +
      `${(med.records / medSecs / 1e6).toFixed(2)} M records/s`,
  );
  // The slowest segment: many small records (pgbench transactions rather than the data load).
  const rates = use.map((s, i) => ({
    name: s.name,
    records: med.perSeg[i].records,
    mbs: s.buf.length / 1e6 / median(runs.map((r) => r.perSeg[i].secs)),
  }));
  const worst = rates.reduce((a, b) => (b.mbs < a.mbs ? b : a));
  console.log(
    `slowest segment: ${worst.name}, ${worst.records} records (~${Math.round(use[0].segSize / Math.max(worst.records, 1))} bytes each), ` +
      `${worst.mbs.toFixed(0)} MB/s median`,
  );
} finally {
  cleanup();
}
