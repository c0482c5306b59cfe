/**
 * Clusters with large WAL segments (initdb --wal-segsize 64 and 1024), archived by walship as
 * their archive_command: push reads such a segment in pieces (src/archive/read-pieces.ts).
 * Per size: a backup while the cluster writes, a 36 MB record (it crosses many of push's pieces),
 * commits at recorded times and a restore point; then the catalog's scan against pg_waldump over
 * the archived files (fetched back with archive-fetch), and walship restore to a time between two
 * commits and to the end of the archive, each started and checked. 1 MiB segments are what most
 * other suites run on. The memory bound is measured by a benchmark (scripts/bench-memory.mjs).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { PgCluster, pgBinDir, userTempDir } from './helpers/pg.js';
import { startArchiving, type Archiving } from './helpers/archiving.js';
import { fsBackend, s3Backend, type RepoBackend } from './helpers/backends.js';
import { parseLsn } from '../src/wal/names.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cases: { mb: number; backend: RepoBackend }[] = [
  { mb: 64, backend: fsBackend() },
  { mb: 64, backend: s3Backend() },
  { mb: 1024, backend: fsBackend() },
];

describe.each(cases)('$mb MiB segments ($backend.name repository)', ({ mb, backend }) => {
  let a: Archiving;
  const marks: Record<string, string> = {};
  const started: PgCluster[] = [];

  beforeAll(async () => {
    a = await startArchiving(backend, `large-${mb}`, { checkpoint_timeout: '1h', max_wal_size: `${4 * mb}MB`, min_wal_size: `${2 * mb}MB` }, { walSegSizeMb: mb });
    const p = a.primary;
    await p.sql('CREATE TABLE marks (id int primary key, note text)');
    await p.sql("CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g");
    const b = await a.run(['backup', '--json'], a.pgEnv());
    expect(b.code, b.stderr).toBe(0);
    await p.sql("INSERT INTO marks VALUES (1, 'first')");
    // A 36 MB record of hex (half of it compresses away): it crosses push's pieces, and the 64 MiB
    // segment's compressed object is uploaded to S3 in parts.
    await p.sql("SELECT pg_logical_emit_message(true, 'walship', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 1180000) g))");
    await sleep(1100);
    marks.between = await p.value("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    await sleep(1100);
    await p.sql("INSERT INTO marks VALUES (2, 'second')");
    await p.sql("SELECT pg_create_restore_point('after_second')");
    await p.sql('INSERT INTO filler SELECT g, md5(g::text) FROM generate_series(50001, 60000) g');
    await p.sql("INSERT INTO marks VALUES (3, 'third')");
    await p.waitArchived(await p.switchWal(), 120_000);
  }, 300_000);

  afterAll(async () => {
    for (const c of started) await c.destroy().catch(() => undefined);
    await a?.cleanup();
  });

  it('indexes what pg_waldump reads in the archived segments', async () => {
    const names = readCatalogFiles(a.catalog);
    // Push read them in pieces, through spill files beside the catalog, and removed those.
    expect(readdirSync(join(dirname(a.catalog), 'spill'))).toEqual([]);
    expect(names.length).toBeGreaterThanOrEqual(2);
    // The archived segments, fetched back as recovery would.
    const dir = userTempDir(`large-${mb}-fetched`);
    for (const n of names) {
      const r = await a.run(['archive-fetch', n, join(dir, n)]);
      expect(r.code, r.stderr).toBe(0);
    }
    const dump = spawnSync(join(pgBinDir(), 'pg_waldump'), ['-p', dir, names[0]!, names[names.length - 1]!], { encoding: 'utf8', maxBuffer: 1 << 30 });
    const re = /^rmgr: (\S+)\s+len \(rec\/tot\):\s+\d+\/\s*(\d+), tx:\s+(\d+), lsn: ([0-9A-F]+\/[0-9A-F]+), prev [0-9A-F]+\/[0-9A-F]+, desc: (\S+)/;
    const records = dump.stdout
      .split('\n')
      .map((l) => re.exec(l))
      .filter((m) => m !== null)
      .map((m) => ({ rmgr: m![1]!, tot: Number(m![2]), xid: Number(m![3]), lsn: parseLsn(m![4]!)!, desc: m![5]! }));
    expect(records.length).toBeGreaterThan(1000);
    expect(records.some((r) => r.tot > 36_000_000)).toBe(true);
    const db = new Database(a.catalog, { readonly: true });
    try {
      const xacts = db.prepare('SELECT x.lsn, x.xid FROM wal_xacts x ORDER BY x.lsn').all() as { lsn: number; xid: number }[];
      const dumped = records.filter((r) => r.rmgr === 'Transaction' && /^(COMMIT|ABORT)/.test(r.desc)).map((r) => ({ lsn: r.lsn, xid: r.xid }));
      const first = dumped[0]!.lsn;
      expect(xacts.filter((x) => x.lsn >= first)).toEqual(dumped);
      const points = db.prepare('SELECT name FROM wal_restore_points').all() as { name: string }[];
      expect(points.map((p) => p.name)).toContain('after_second');
      // Every record pg_waldump read from the first archived segment on is counted once: where it starts.
      const counted = db.prepare("SELECT total(records) + total(tail_state IS 'complete') AS n FROM wal_scans WHERE file IN (" + names.map(() => '?').join(',') + ')').get(...names) as { n: number };
      expect(counted.n).toBe(records.length);
    } finally {
      db.close();
    }
  }, 300_000);

  async function restoreAndStart(args: string[]): Promise<PgCluster> {
    const base = userTempDir(`large-${mb}-restored`);
    const r = await a.run(['restore', '--pgdata', join(base, 'data'), ...args]);
    expect(r.code, r.stderr).toBe(0);
    const c = await PgCluster.create({ baseDir: base, noInit: true, conf: { archive_mode: 'off' }, env: a.env });
    started.push(c);
    await c.start();
    await c.waitPromoted(240_000);
    return c;
  }

  const ids = async (c: PgCluster) => (await c.sql('SELECT id FROM marks ORDER BY id')).map((r) => Number(r[0]));

  it('restores to a time between two commits, and to the end of the archive', async () => {
    const between = await restoreAndStart(['--target-time', marks.between!]);
    expect(await ids(between)).toEqual([1]);
    await between.destroy();
    const end = await restoreAndStart([]);
    expect(await ids(end)).toEqual([1, 2, 3]);
    expect(await end.value('SELECT count(*) FROM filler')).toBe('60000');
    await end.destroy();
  }, 480_000);

  it('verify reads every segment in depth, in pieces, and names one damaged in its middle', async () => {
    const sound = await a.run(['verify', '--deep', '--json']);
    expect(sound.code, sound.stderr).toBe(0);
    const doc = JSON.parse(sound.stdout) as { failures: number; checked: { walFiles: number; rawBytes: number } };
    expect(doc.failures).toBe(0);
    expect(doc.checked.rawBytes).toBeGreaterThanOrEqual(2 * mb * 1024 * 1024);
    // The largest object: a byte flipped halfway through its compressed data.
    const db = new Database(a.catalog, { readonly: true });
    const big = db.prepare("SELECT name, object_key FROM wal_files WHERE kind = 'segment' ORDER BY stored_size DESC LIMIT 1").get() as { name: string; object_key: string };
    db.close();
    const driver = backend.driver();
    const obj = (await driver.get(big.object_key))!;
    obj[Math.floor(obj.length / 2)] ^= 0xff;
    await backend.overwrite(big.object_key, obj);
    const r = await a.run(['verify', '--deep', '--json']);
    expect(r.code).not.toBe(0);
    const problems = (JSON.parse(r.stdout) as { problems: { kind: string; what: string; detail: string }[] }).problems;
    expect(problems.filter((p) => p.kind === 'damaged').map((p) => p.what)).toEqual([big.object_key]);
    const fetched = await a.run(['archive-fetch', big.name, join(userTempDir(`large-${mb}-damaged`), big.name)]);
    expect(fetched.code).toBe(255);
  }, 300_000);
});

/** The segments the catalog indexes, in order. */
function readCatalogFiles(catalog: string): string[] {
  const db = new Database(catalog, { readonly: true });
  try {
    return (db.prepare("SELECT name FROM wal_files WHERE kind = 'segment' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
  } finally {
    db.close();
  }
}
