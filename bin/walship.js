#!/usr/bin/env node
// CommonJS (bin/package.json): one pre-built bundle, no ES module loader on the per-file path.
require('../dist/walship.cjs');
