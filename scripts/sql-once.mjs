#!/usr/bin/env node
// Runs the SQL on stdin against the server at a unix-socket directory and port, as postgres, and
// prints each row of the last statement's result as `psql -At` would (columns joined by "|").
// For the scripts where no psql is installed (lib-pg.mjs, Cluster.psql); uses walship's own
// PostgreSQL client library.
//   node scripts/sql-once.mjs SOCKET_DIR PORT < query.sql
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [host, port] = process.argv.slice(2);
const { Client } = createRequire(import.meta.url)('pg');
const client = new Client({ host, port: Number(port), user: 'postgres', database: 'postgres' });
try {
  await client.connect();
  const results = [].concat(await client.query({ text: readFileSync(0, 'utf8'), rowMode: 'array' }));
  const last = results.at(-1);
  for (const row of last?.rows ?? []) console.log(row.map((v) => (v === null ? '' : v === true ? 't' : v === false ? 'f' : String(v))).join('|'));
} catch (err) {
  console.error(`ERROR:  ${err.message}`);
  process.exitCode = 3;
} finally {
  await client.end().catch(() => undefined);
}
