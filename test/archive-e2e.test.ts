/**
 * End to end: a live PostgreSQL archives through walship; a base backup plus walship as
 * restore_command recovers a second cluster to the end of the archive with the same data.
 * Runs once per repository backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PgCluster, confString, writeUserFile } from './helpers/pg.js';
import { startArchiving, type Archiving } from './helpers/archiving.js';
import { walship } from './helpers/walship.js';
import { repoBackends, type RepoBackend } from './helpers/backends.js';

describe.each(repoBackends())('archive and recover through walship ($name repository)', (backend: RepoBackend) => {
  let a: Archiving;
  let primary: PgCluster;
  let restored: PgCluster | undefined;
  let work: string;
  let repo: string;
  let catalog: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    a = await startArchiving(backend, 'e2e');
    ({ primary, work, repo, catalog, env } = a);
  });

  afterAll(async () => {
    await restored?.destroy();
    await a?.cleanup();
  });

  it('archives exactly what pg_stat_archiver reports, and recovers a second cluster from it', async () => {
    await primary.sql('CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;');
    await primary.waitArchived(await primary.switchWal());

    const backupDir = join(work, 'restored');
    await primary.baseBackup(join(backupDir, 'data'), 'e2e');
    await primary.sql("INSERT INTO t SELECT g, 'after backup ' || g FROM generate_series(20001, 30000) g; UPDATE t SET v = 'changed' WHERE id % 7 = 0;");
    const last = await primary.switchWal();
    await primary.waitArchived(last);
    const expected = await primary.value("SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t");

    // The catalog and the repository hold exactly what the archiver reports.
    const archivedCount = Number(await primary.value('SELECT archived_count FROM pg_stat_archiver'));
    const failed = Number(await primary.value('SELECT failed_count FROM pg_stat_archiver'));
    expect(failed).toBe(0);
    const db = new Database(catalog, { readonly: true });
    const rows = db.prepare('SELECT name, kind FROM wal_files ORDER BY name').all() as { name: string; kind: string }[];
    db.close();
    expect(rows.length).toBe(archivedCount);
    expect(rows.some((r) => r.name === last)).toBe(true);
    expect(rows.some((r) => r.kind === 'backup')).toBe(true);
    const repoNames = (await backend.listWalNames()).sort();
    expect(repoNames).toEqual(rows.map((r) => r.name));
    const done = readdirSync(join(primary.dataDir, 'pg_wal', 'archive_status'))
      .filter((f) => f.endsWith('.done'))
      .map((f) => f.slice(0, -'.done'.length));
    for (const name of done) expect(repoNames).toContain(name);

    const info = await walship(['info', '--json', '--repo', repo, '--catalog', catalog], { env, asUser: true });
    expect(info.code).toBe(0);
    const report = JSON.parse(info.stdout);
    expect(report.repository.systemIdentifier).toBe(await primary.systemIdentifier());
    expect(report.timelines[0].gaps).toEqual([]);
    expect(report.totals.files).toBe(archivedCount);

    // Recover a second cluster from the base backup, with WAL only from walship.
    await primary.stop();
    restored = await PgCluster.create({
      baseDir: backupDir,
      noInit: true,
      conf: {
        archive_mode: 'off',
        restore_command: confString(a.restoreCommand),
      },
      env,
    });
    writeUserFile(join(restored.dataDir, 'recovery.signal'), '');
    await restored.start();
    await restored.waitPromoted();
    expect(await restored.value("SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t")).toBe(expected);
    // It recovered to the end of the archive and switched to a new timeline.
    expect(await restored.value('SELECT pg_walfile_name(pg_current_wal_lsn())')).toMatch(/^00000002/);
    const log = readFileSync(restored.logFile, 'utf8');
    expect(log).toMatch(new RegExp(`restored log file "${last}" from archive`));
  });
});
