#!/usr/bin/env node
// Bundles the command line into one CommonJS file, dist/walship.cjs, which bin/walship.js loads.
// PostgreSQL starts walship once per WAL file: loading one pre-linked CommonJS file instead of a
// tree of ES modules saves ~20 ms of every archive-push / archive-fetch (docs/benchmarks.md).
// Modules stay lazy inside the bundle (each `await import()` runs its module when first needed);
// the packages with native code or a large load (SQLite, zstd, the S3 SDK, commander, pg,
// tar-stream) stay outside and are required only by the commands that use them. The bundle is
// placed, for `import.meta.url`, as if it were a module of dist/archive/: the push worker
// (dist/archive/lane-worker.js, built by tsc) and createRequire resolve from there.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await build({
  entryPoints: [join(root, 'src', 'cli', 'main.ts')],
  outfile: join(root, 'dist', 'walship.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  sourcemap: 'linked',
  external: ['better-sqlite3', 'zstd-napi', '@aws-sdk/*', '@smithy/*', 'commander', 'pg', 'tar-stream', '@node-rs/crc32'],
  define: { 'import.meta.url': '__walship_module_url' },
  banner: {
    js: "const __walship_module_url = require('node:url').pathToFileURL(require('node:path').join(__dirname, 'archive', 'walship.cjs')).href;",
  },
  // import() of a package or builtin becomes require(): no ES module loader starts at run time.
  supported: { 'dynamic-import': false },
  logLevel: 'warning',
});

// V8's code cache of the bundle's top level, for bin/walship.js (saves parsing it on every call).
{
  const { readFileSync, writeFileSync } = await import('node:fs');
  const { Script } = await import('node:vm');
  const { wrap } = (await import('node:module')).default;
  const file = join(root, 'dist', 'walship.cjs');
  writeFileSync(`${file}.cache`, new Script(wrap(readFileSync(file, 'utf8')), { filename: file }).createCachedData());
}
