#!/usr/bin/env node
// Which zstd level should archive-push use by default? Compresses real pgbench WAL
// (16 MiB segments) at several levels and reports ratio and throughput (medians).
// Usage: node scripts/bench-compress.mjs [dir-with-segments]
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { compress } from 'zstd-napi';
import { Cluster, confString, userDir } from './lib-pg.mjs';

let dir = process.argv[2];
let cleanup;
if (!dir) {
  const base = userDir('bench-compress');
  dir = join(base, 'wal');
  const c = Cluster.init(base, { conf: { archive_mode: 'on', archive_command: confString(`mkdir -p ${dir} && cp %p ${dir}/%f`), max_wal_size: '1GB' } });
  c.start();
  c.pgbench(['-i', '-s', '10', '-q']);
  c.pgbench(['-c', '2', '-T', '15', '-n']);
  c.psql('SELECT pg_switch_wal()');
  c.psql("SELECT pg_sleep(2)");
  c.stop();
  cleanup = () => rmSync(base, { recursive: true, force: true });
}
const files = readdirSync(dir).filter((f) => /^[0-9A-F]{24}$/.test(f)).slice(0, 12);
const segs = files.map((f) => readFileSync(join(dir, f)));
const total = segs.reduce((a, b) => a + b.length, 0);
console.log(`${segs.length} segments, ${(total / 1048576).toFixed(0)} MiB of pgbench WAL`);
console.log('level  ratio   MB/s (median of 3)');
for (const level of [1, 2, 3, 6, 9]) {
  const times = [];
  let out = 0;
  for (let r = 0; r < 3; r++) {
    out = 0;
    const t0 = process.hrtime.bigint();
    for (const s of segs) out += compress(s, { compressionLevel: level }).length;
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  console.log(`${String(level).padStart(5)}  ${(out / total).toFixed(3)}  ${(total / 1e6 / times[1]).toFixed(0)}`);
}
cleanup?.();
