#!/usr/bin/env node
// Compiles the client of the per-file commands (src/client/walship-client.c) into
// dist/walship-client, with the C compiler ($CC, else cc) when there is one, and writes the
// build's id (dist/build-id: a hash of the bundle and of the client's source) that the client
// and the agent compare. The client is optional: without it (no compiler, not Linux) every call
// runs in node, as without an agent, only slower per call. The node running this build is
// compiled in as the node it hands calls to.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cc = process.env.CC || 'cc';
const src = join(root, 'src', 'client', 'walship-client.c');
const out = join(root, 'dist', 'walship-client');
const id = createHash('sha256').update(readFileSync(join(root, 'dist', 'walship.cjs'))).update(readFileSync(src)).digest('hex').slice(0, 32);
writeFileSync(join(root, 'dist', 'build-id'), `${id}\n`);
// What earlier builds compiled, gone.
for (const old of ['walship-push', 'walship-fetch']) rmSync(join(root, 'dist', old), { force: true });
rmSync(out, { force: true });
if (process.platform !== 'linux') {
  console.error('walship build: not Linux; archive-push and archive-fetch run in node (dist/walship-client not built)');
} else {
  const tmp = `${out}.${process.pid}.tmp`;
  const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-std=c11', `-DWALSHIP_NODE=${JSON.stringify(process.execPath)}`, `-DWALSHIP_BUILD_ID=${JSON.stringify(id)}`, '-o', tmp, src], { encoding: 'utf8' });
  if (r.status === 0) {
    chmodSync(tmp, 0o755);
    renameSync(tmp, out);
  } else {
    rmSync(tmp, { force: true });
    const why = r.error ? `${cc}: ${r.error.code ?? r.error.message}` : (r.stderr || '').trim().split('\n').slice(-3).join(' | ');
    console.error(`walship build: dist/walship-client not built (${why}); archive-push and archive-fetch run in node, slower per call`);
  }
}
