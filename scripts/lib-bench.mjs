// What the benchmark scripts share: the command line, the log, medians, the built walship, and
// the section of docs/benchmarks.md each writes between its markers.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3_KEY } from './lib-s3rver.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const WALSHIP = join(ROOT, 'bin', 'walship.js');
export const args = process.argv.slice(2);
export const opt = (n, d) => (args.includes(n) ? args[args.indexOf(n) + 1] : d);
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const fmt = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
/** The environment walship needs for a repository on s3rver at `endpoint`. */
export const s3env = (endpoint) => ({ AWS_ACCESS_KEY_ID: S3_KEY, AWS_SECRET_ACCESS_KEY: S3_KEY, WALSHIP_S3_ENDPOINT: endpoint, WALSHIP_S3_FORCE_PATH_STYLE: 'on', WALSHIP_S3_REGION: 'us-east-1' });

/** A logger prefixed with the script's name and the seconds since `startedAt`. */
export function logger(name, startedAt) {
  return (...m) => console.log(`[${name} ${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)}s]`, ...m);
}

/** Exits when walship is not built; else a loader of its compiled modules. */
export function builtWalship(name) {
  if (!existsSync(join(ROOT, 'dist', 'walship.cjs'))) {
    console.error(`${name}: dist/ is missing: build first with \`npm run build\``);
    process.exit(2);
  }
  return (p) => import(join(ROOT, 'dist', p));
}

/** Writes `section` (which starts with `<!-- marker -->` and ends with `<!-- /marker -->`) into `file`, replacing an earlier one. */
export function writeSection(file, marker, section) {
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const marked = new RegExp(`<!-- ${marker} -->[\\s\\S]*<!-- /${marker} -->\\n?`);
  writeFileSync(file, marked.test(old) ? old.replace(marked, () => section) : `${old}${old.endsWith('\n') || old === '' ? '' : '\n'}\n${section}`);
}
