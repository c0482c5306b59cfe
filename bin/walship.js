#!/usr/bin/env node
// CommonJS (bin/package.json): PostgreSQL starts walship once per WAL file, so this loads one
// pre-built bundle, dist/walship.cjs, and compiles it from V8's code cache (dist/walship.cjs.cache,
// written by `npm run build`) instead of parsing it again. V8 rejects a cache that does not match
// the bundle or this node, and the bundle is then compiled as usual.
'use strict';
const { readFileSync } = require('node:fs');
const { dirname, join } = require('node:path');
const Module = require('node:module');

const file = join(__dirname, '..', 'dist', 'walship.cjs');
let cachedData;
try {
  cachedData = readFileSync(`${file}.cache`);
} catch {
  cachedData = undefined;
}
if (cachedData === undefined) {
  require(file);
} else {
  const { Script } = require('node:vm');
  const script = new Script(Module.wrap(readFileSync(file, 'utf8')), { filename: file, cachedData });
  const mod = new Module(file, module);
  mod.filename = file;
  script.runInThisContext()(mod.exports, Module.createRequire(file), mod, file, dirname(file));
}
