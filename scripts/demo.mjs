#!/usr/bin/env node
// npm run demo: a throwaway PostgreSQL cluster archives through walship into a local repository,
// then a second cluster is recovered from a base backup with walship as restore_command.
// Everything lives in one temp directory, reachable only through a unix socket, removed at the
// end (pass --keep to keep it).
import { existsSync, rmSync, writeFileSync, chownSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cluster, asUser, confString, osUser, pgBinDir, userDir } from './lib-pg.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const bin = join(root, 'bin', 'walship.js');
const keep = process.argv.includes('--keep');
const say = (s) => console.log(`\n== ${s}`);

if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) {
  console.error('demo: walship is not built; run "npm install" (or "npm run build") first');
  process.exit(1);
}
let pgBin;
try {
  pgBin = pgBinDir();
} catch (e) {
  console.error(`demo: ${e.message}`);
  process.exit(1);
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
  console.log(`walship demo in ${base} (PostgreSQL from ${pgBin}, running as OS user ${osUser().name})`);

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

  say('take a base backup (pg_basebackup, WAL left to the archive)');
  asUser(join(pgBin, 'pg_basebackup'), ['-h', primary.base, '-p', String(primary.port), '-U', 'postgres', '-D', join(base, 'restored', 'data'), '-X', 'none', '-c', 'fast', '-l', 'demo', '--no-sync']);
  primary.psql("INSERT INTO orders (id, item) SELECT g, 'after the backup ' || g FROM generate_series(5001, 8000) g; UPDATE orders SET item = 'changed' WHERE id % 10 = 0;");
  const last = primary.psql('SELECT pg_walfile_name(pg_switch_wal())');
  console.log(`3000 more rows and 800 updates after the backup; switched WAL at ${last}`);
  await waitFor(`${last} to be archived`, () => primary.psql('SELECT last_archived_wal FROM pg_stat_archiver') >= last);
  const expected = primary.psql("SELECT count(*) || ' rows, checksum ' || md5(string_agg(id || item, ',' ORDER BY id)) FROM orders");
  console.log(primary.psql("SELECT 'pg_stat_archiver: ' || archived_count || ' archived, ' || failed_count || ' failed' FROM pg_stat_archiver"));

  say('walship info');
  console.log(run(['info']).stdout.trimEnd());
  primary.stop();

  say('recover a second cluster: base backup + restore_command = walship archive-fetch %f %p');
  const restored = new Cluster(join(base, 'restored'));
  clusters.push(restored);
  restored.conf({
    listen_addresses: "''",
    port: restored.port,
    unix_socket_directories: `'${restored.base}'`,
    archive_mode: 'off',
    restore_command: confString(walship('archive-fetch %f %p')),
  });
  writeFileSync(join(restored.data, 'recovery.signal'), '');
  chownSync(join(restored.data, 'recovery.signal'), osUser().uid, osUser().gid);
  restored.start();
  await waitFor('recovery to finish', () => restored.psql('SELECT pg_is_in_recovery()') === 'f');
  const got = restored.psql("SELECT count(*) || ' rows, checksum ' || md5(string_agg(id || item, ',' ORDER BY id)) FROM orders");
  console.log(`original : ${expected}`);
  console.log(`recovered: ${got}`);
  if (got !== expected) throw new Error('the recovered data differs from the original');
  console.log(`\nThe data came back through walship. Now on timeline ${restored.psql("SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")} after promotion.`);
} catch (e) {
  console.error(`\ndemo failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  for (const c of clusters) c.stop('immediate');
  if (keep) console.log(`\nkept ${base}`);
  else rmSync(base, { recursive: true, force: true });
}
