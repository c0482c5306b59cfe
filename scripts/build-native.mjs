#!/usr/bin/env node
// Compiles the compiled entries of the per-file commands (src/archive/native/): dist/walship-fetch
// (archive-fetch answered from the prefetch spool) and dist/walship-push (archive-push answered
// from a read-ahead record), with the C compiler ($CC, else cc) when there is one. They are
// optional: without them (no compiler, not Linux) every call runs in node, as before, only slower
// per call. The node running this build is compiled in as the node they hand their other calls to.
import { spawnSync } from 'node:child_process';
import { chmodSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cc = process.env.CC || 'cc';

for (const [entry, command] of [
  ['walship-fetch', 'archive-fetch'],
  ['walship-push', 'archive-push'],
]) {
  const src = join(root, 'src', 'archive', 'native', `${entry}.c`);
  const out = join(root, 'dist', entry);
  const tmp = `${out}.${process.pid}.tmp`;
  rmSync(out, { force: true });
  if (process.platform !== 'linux') {
    console.error(`walship build: not Linux; ${command} runs in node (dist/${entry} not built)`);
    continue;
  }
  const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-std=c11', `-DWALSHIP_NODE=${JSON.stringify(process.execPath)}`, '-o', tmp, src], { encoding: 'utf8' });
  if (r.status === 0) {
    chmodSync(tmp, 0o755);
    renameSync(tmp, out);
  } else {
    rmSync(tmp, { force: true });
    const why = r.error ? `${cc}: ${r.error.code ?? r.error.message}` : (r.stderr || '').trim().split('\n').slice(-3).join(' | ');
    console.error(`walship build: dist/${entry} not built (${why}); ${command} runs in node, slower per call`);
  }
}
