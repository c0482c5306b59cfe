#!/usr/bin/env node
// Compiles the compiled entry of archive-fetch, dist/walship-fetch (src/archive/walship-fetch.c),
// with the C compiler ($CC, else cc) when there is one. It is optional: without it (no compiler,
// not Linux) every archive-fetch runs in node, as before, only slower per call. The node running
// this build is compiled in as the node walship-fetch hands its other calls to.
import { spawnSync } from 'node:child_process';
import { chmodSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src', 'archive', 'walship-fetch.c');
const out = join(root, 'dist', 'walship-fetch');
const tmp = `${out}.${process.pid}.tmp`;
const cc = process.env.CC || 'cc';

rmSync(out, { force: true });
if (process.platform !== 'linux') {
  console.error('walship build: not Linux; archive-fetch runs in node (dist/walship-fetch not built)');
} else {
  const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-std=c11', `-DWALSHIP_NODE=${JSON.stringify(process.execPath)}`, '-o', tmp, src], { encoding: 'utf8' });
  if (r.status === 0) {
    chmodSync(tmp, 0o755);
    renameSync(tmp, out);
  } else {
    rmSync(tmp, { force: true });
    const why = r.error ? `${cc}: ${r.error.code ?? r.error.message}` : (r.stderr || '').trim().split('\n').slice(-3).join(' | ');
    console.error(`walship build: dist/walship-fetch not built (${why}); archive-fetch runs in node, slower per call`);
  }
}
