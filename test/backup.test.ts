/**
 * walship backup against a real PostgreSQL under load, per repository backend: the backup is
 * recorded, lists as restorable, is complete per its manifest, and restores by hand with only
 * zstd and tar (the format promise), recovering to the same data through walship archive-fetch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, chmodSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { PgCluster, confString, pgUser, writeUserFile } from './helpers/pg.js';
import { startArchiving, type Archiving } from './helpers/archiving.js';
import { walship } from './helpers/walship.js';
import { repoBackends, type RepoBackend } from './helpers/backends.js';
import type { Manifest } from '../src/backup/format.js';

describe.each(repoBackends())('walship backup ($name repository)', (backend: RepoBackend) => {
  let a: Archiving;
  let primary: PgCluster;
  let restored: PgCluster | undefined;
  let work: string;

  beforeAll(async () => {
    a = await startArchiving(backend, 'backup');
    ({ primary, work } = a);
  });
  afterAll(async () => {
    await restored?.destroy();
    await a?.cleanup();
  });
  const run = (args: string[], extra: Record<string, string> = {}) => a.run(args, extra);

  it('marks a backup failed, never restorable, when the repository fails mid-backup', async () => {
    if (backend.name !== 'filesystem') return;
    // The repository stays readable but refuses new backup objects (as a full or read-only disk would).
    const backupsDir = join(a.repo, 'backups');
    mkdirSync(backupsDir, { recursive: true });
    chownSync(backupsDir, 0, 0);
    chmodSync(backupsDir, 0o755);
    try {
      const r = await run(['backup', '--label', 'doomed'], a.pgEnv());
      expect(r.code, r.stderr).toBe(6);
      expect(r.stderr).toMatch(/code=REPOSITORY_UNAVAILABLE/);
    } finally {
      chownSync(backupsDir, pgUser().uid, pgUser().gid);
    }
    const rows = JSON.parse((await run(['backups', '--json'])).stdout) as { label: string; status: string; restorable: boolean; error: string | null }[];
    const doomed = rows.find((x) => x.label === 'doomed');
    expect(doomed).toMatchObject({ status: 'failed', restorable: false });
    expect(doomed?.error).toMatch(/EACCES/);
    // The server is not left in backup mode: the next backup works.
    const ok = await run(['backup', '--label', 'after-failure'], a.pgEnv());
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('takes a backup that restores by hand with zstd and tar', async () => {
    await primary.sql("CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT g, repeat('x', 200) || g FROM generate_series(1, 50000) g;");
    const pgEnv = a.pgEnv();
    // Keep writing while the backup runs.
    const load = primary.sql("INSERT INTO t SELECT g, 'during ' || g FROM generate_series(50001, 90000) g; SELECT pg_sleep(0.5); UPDATE t SET v = 'upd' WHERE id % 13 = 0;");
    const b = await run(['backup', '--json', '--label', 'nightly'], pgEnv);
    await load;
    expect(b.code, b.stderr).toBe(0);
    const summary = JSON.parse(b.stdout);
    expect(summary).toMatchObject({ label: 'nightly', pgMajor: 15, systemIdentifier: await primary.systemIdentifier(), startTimeline: 1 });
    expect(summary.rawBytes).toBeGreaterThan(10 * 1024 * 1024);
    expect(summary.storedBytes).toBeLessThan(summary.rawBytes);

    await primary.sql("INSERT INTO t SELECT g, 'after' FROM generate_series(90001, 91000) g;");
    await primary.waitArchived(await primary.switchWal());
    const expected = await primary.value("SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t");
    const list = await run(['backups', '--json']);
    const rows = JSON.parse(list.stdout) as { name: string; source: string; status: string; restorable: boolean }[];
    expect(rows.find((r) => r.name === summary.id)).toMatchObject({ source: 'walship', status: 'complete', restorable: true });
    // The server's own backup history file for the same backup (archived by now) is listed too, not restorable.
    expect(rows.some((r) => r.source === 'history-file' && !r.restorable)).toBe(true);


    // The manifest covers what was read; the chunks are plain .tar.zst.
    const d = backend.driver();
    const manifest = JSON.parse((await d.get(`backups/${summary.id}/manifest.json`))!.toString()) as Manifest;
    expect(manifest.files.some((f) => f.path === 'global/pg_control')).toBe(true);
    expect(manifest.files.some((f) => f.path.startsWith('pg_wal/'))).toBe(false);
    expect(manifest.files.some((f) => f.path === 'postmaster.pid')).toBe(false);
    expect(manifest.directories.map((x) => x.path)).toContain('pg_wal/archive_status');

    const target = join(work, 'restored');
    const data = join(target, 'data');
    mkdirSync(data, { recursive: true });
    for (const dir of manifest.directories) mkdirSync(join(data, dir.path), { recursive: true });
    const bj = JSON.parse((await d.get(`backups/${summary.id}/backup.json`))!.toString());
    for (const chunk of bj.chunks as string[]) {
      const z = join(work, chunk);
      writeFileSync(z, (await d.get(`backups/${summary.id}/${chunk}`))!);
      execFileSync('sh', ['-c', `zstd -dc '${z}' | tar -x -C '${data}'`]);
    }
    execFileSync('chown', ['-R', `${pgUser().uid}:${pgUser().gid}`, target]);
    chmodSync(data, 0o700);
    restored = await PgCluster.create({
      baseDir: target,
      noInit: true,
      conf: { archive_mode: 'off', restore_command: confString(a.restoreCommand) },
      env: a.env,
    });
    writeUserFile(join(data, 'recovery.signal'), '');
    await primary.stop();
    await restored.start();
    await restored.waitPromoted();
    expect(await restored.value("SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t")).toBe(expected);
  });

  it('refuses a server without archiving, and a wrong connection, with one line each', async () => {
    if (backend.name !== 'filesystem') return; // nothing here depends on the repository backend
    const r = await run(['backup'], { WALSHIP_PG_HOST: '/nonexistent', WALSHIP_PG_PORT: '1', WALSHIP_PG_USER: 'postgres' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot connect to PostgreSQL/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const plain = await PgCluster.create();
    try {
      await plain.start();
      const noArchive = await run(['backup'], { WALSHIP_PG_HOST: plain.socketDir, WALSHIP_PG_PORT: String(plain.port), WALSHIP_PG_USER: 'postgres' });
      expect(noArchive.code).toBe(2);
      expect(noArchive.stderr).toMatch(/archive_mode is off: a base backup is useless without archived WAL/);
      // The classic misconfiguration: archiving on, but its command fails. The wait is bounded and says why.
      plain.setConf({ archive_mode: 'on', archive_command: "'/bin/false'" });
      await plain.stop();
      await plain.start();
      // (Its own repository: this cluster is not the one the suite's repository belongs to.)
      const own = ['--repo', join(a.work, 'plain-repo'), '--catalog', join(a.work, 'plain.db')];
      mkdirSync(join(a.work, 'plain-repo'));
      chownSync(join(a.work, 'plain-repo'), pgUser().uid, pgUser().gid);
      const pgEnv = { ...a.env, WALSHIP_PG_HOST: plain.socketDir, WALSHIP_PG_PORT: String(plain.port), WALSHIP_PG_USER: 'postgres' };
      const broken = await walship(['backup', '--archive-timeout', '3', '--label', 'broken-archiving', ...own], { env: pgEnv, asUser: true });
      expect(broken.code, broken.stderr).toBe(6);
      expect(broken.stderr).toMatch(/was not archived within 3 s: check archive_command .* the backup is not usable until it is/);
      const rows = JSON.parse((await walship(['backups', '--json', ...own], { env: a.env, asUser: true })).stdout) as { label: string; status: string; restorable: boolean }[];
      expect(rows.find((r) => r.label === 'broken-archiving')).toMatchObject({ status: 'failed', restorable: false });
    } finally {
      await plain.destroy();
    }
  });
});
