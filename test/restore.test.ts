/**
 * walship restore, end to end, per repository backend: a real PostgreSQL under pgbench load is
 * backed up with walship backup; more transactions at recorded times, a restore point; then
 * walship restore to several targets, each started as the unprivileged user and checked to hold
 * exactly the state at its target and to accept writes after promotion. Also: a target before
 * the backup is refused before anything is written, a non-empty data directory is refused, and
 * a damaged file in a stored backup stops the restore with the file named.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { join, relative } from 'node:path';
import { compress, decompress } from 'zstd-napi';
import { PgCluster, pgBinDir, pgUser, runAsUser, userTempDir, writeUserFile } from './helpers/pg.js';
import { walship } from './helpers/walship.js';
import { objectKeyFor } from '../src/archive/keys.js';
import { parseWalFileName } from '../src/wal/names.js';
import { startArchiving, type Archiving } from './helpers/archiving.js';
import { repoBackends, type RepoBackend } from './helpers/backends.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(repoBackends())('walship restore ($name repository)', (backend: RepoBackend) => {
  let a: Archiving;
  let backupId: string;
  const marks: Record<string, string> = {};
  let spcOid: string;
  const started: PgCluster[] = [];

  beforeAll(async () => {
    a = await startArchiving(backend, 'restore');
    const p = a.primary;
    const pgbench = (args: string[]) =>
      runAsUser(join(pgBinDir(), 'pgbench'), ['-h', p.socketDir, '-p', String(p.port), '-U', 'postgres', ...args, 'postgres'], { cwd: p.baseDir });
    await pgbench(['-i', '-s', '2', '-q']);
    await p.sql('CREATE TABLE marks (id int primary key, note text)');
    // A tablespace outside the data directory, with a table in it.
    const spcDir = join(a.work, 'spc');
    mkdirSync(spcDir);
    chownSync(spcDir, pgUser().uid, pgUser().gid);
    await p.sql(`CREATE TABLESPACE outside LOCATION '${spcDir}'`);
    await p.sql("CREATE TABLE far (v text) TABLESPACE outside; INSERT INTO far SELECT 'far ' || g FROM generate_series(1, 1000) g;");
    spcOid = await p.value("SELECT oid FROM pg_tablespace WHERE spcname = 'outside'");
    // The backup runs while pgbench writes.
    const load = pgbench(['-c', '2', '-T', '4', '-n']);
    const b = await a.run(['backup', '--json'], a.pgEnv());
    await load;
    expect(b.code, b.stderr).toBe(0);
    backupId = JSON.parse(b.stdout).id;

    await p.sql("INSERT INTO marks VALUES (1, 'first')");
    await sleep(1100);
    marks.between = await p.value("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    await sleep(1100);
    await p.sql("INSERT INTO marks VALUES (2, 'second')");
    await p.sql("SELECT pg_create_restore_point('before_third')");
    await p.sql("INSERT INTO marks VALUES (3, 'third')");
    marks.lsn = await p.value('SELECT pg_current_wal_lsn()');
    await p.sql("INSERT INTO marks VALUES (4, 'fourth')");
    await pgbench(['-c', '1', '-t', '50', '-n']);
    marks.accounts = await p.value('SELECT sum(abalance) || \':\' || count(*) FROM pgbench_accounts');
    await p.waitArchived(await p.switchWal());
  });

  afterAll(async () => {
    for (const c of started) await c.destroy().catch(() => undefined);
    await a?.cleanup();
  });

  /** walship restore into a new directory, start it, wait for promotion; returns the cluster. */
  async function restoreAndStart(args: string[]): Promise<PgCluster> {
    const base = userTempDir('restored');
    // The original tablespace location is in use: each restore puts it elsewhere.
    const r = await a.run(['restore', '--pgdata', join(base, 'data'), '--tablespace', `${spcOid}=${join(base, 'spc')}`, ...args]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Start the server:  pg_ctl -D /);
    // The restored server must not archive into the repository the tests still read.
    const c = await PgCluster.create({ baseDir: base, noInit: true, conf: { archive_mode: 'off' }, env: a.env });
    started.push(c);
    await c.start();
    await c.waitPromoted();
    // Open for writes on a new timeline.
    await c.sql("INSERT INTO marks VALUES (100, 'written after promotion')");
    expect(await c.value('SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)')).not.toBe('00000001');
    return c;
  }

  const ids = async (c: PgCluster) => (await c.sql('SELECT id FROM marks WHERE id < 100 ORDER BY id')).map((r) => Number(r[0]));

  it('recovers to a time between two commits', async () => {
    const c = await restoreAndStart(['--target-time', marks.between!]);
    expect(await ids(c)).toEqual([1]);
    await c.destroy();
  });

  it('recovers to a restore point, and to an LSN', async () => {
    const c1 = await restoreAndStart(['--target-name', 'before_third']);
    expect(await ids(c1)).toEqual([1, 2]);
    await c1.destroy();
    const c2 = await restoreAndStart(['--target-lsn', marks.lsn!]);
    expect(await ids(c2)).toEqual([1, 2, 3]);
    await c2.destroy();
  });

  it('recovers to the end of the archive by default, with pgbench data intact', async () => {
    const c = await restoreAndStart([]);
    expect(await ids(c)).toEqual([1, 2, 3, 4]);
    expect(await c.value("SELECT sum(abalance) || ':' || count(*) FROM pgbench_accounts")).toBe(marks.accounts);
    // The tablespace came back at its new location.
    expect(await c.value('SELECT count(*) FROM far')).toBe('1000');
    expect(await c.value("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'outside'")).toBe(join(c.baseDir, 'spc'));
    await c.destroy();
  });

  it('restores a standby that follows the archive (--standby)', async () => {
    if (backend.name !== 'filesystem') return; // the same restore path as above; one backend is enough
    const base = userTempDir('standby');
    const data = join(base, 'data');
    const r = await a.run(['restore', '--pgdata', data, '--standby', '--tablespace', `${spcOid}=${join(base, 'spc')}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(data, 'standby.signal'))).toBe(true);
    expect(existsSync(join(data, 'recovery.signal'))).toBe(false);
    const c = await PgCluster.create({ baseDir: base, noInit: true, conf: { archive_mode: 'off' }, env: a.env });
    started.push(c);
    await c.start();
    // A hot standby: readable, still in recovery, with everything archived replayed.
    const deadline = Date.now() + 60_000;
    while ((await c.value('SELECT count(*) FROM marks WHERE id < 100').catch(() => '')) !== '4') {
      if (Date.now() > deadline) throw new Error('the standby did not replay the archive');
      await sleep(200);
    }
    expect(await c.value('SELECT pg_is_in_recovery()')).toBe('t');
    await c.destroy();
  });

  it('writes a restore_command with absolute paths, and checks it from the data directory, when given relative ones', async () => {
    // As an operator in a shell would: --config and --catalog relative to the working directory.
    const base = userTempDir('relative');
    writeUserFile(join(base, 'ws.conf'), `repo = '${a.repo}'\n`);
    const r = await walship(['restore', '--pgdata', 'data', '--config', 'ws.conf', '--catalog', relative(base, a.catalog), '--tablespace', `${spcOid}=spc`], {
      cwd: base,
      asUser: true,
      env: a.env,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/restore_command checked: it fetched [0-9A-F]{24} from the data directory/);
    const line = readFileSync(join(base, 'data', 'postgresql.auto.conf'), 'utf8').split('\n').find((l) => l.startsWith('restore_command'))!;
    expect(line).toContain(`--config ${join(base, 'ws.conf')}`);
    expect(line).toContain(`--catalog ${a.catalog}`);
    const c = await PgCluster.create({ baseDir: base, noInit: true, conf: { archive_mode: 'off' }, env: a.env });
    started.push(c);
    await c.start();
    await c.waitPromoted();
    expect(await ids(c)).toEqual([1, 2, 3, 4]);
    await c.destroy();
  });

  it('does not report success when the restore_command cannot fetch the first segment: exit 10, with the reason', async () => {
    const planned = JSON.parse((await a.run(['plan', '--target', 'latest', '--json'])).stdout) as { wal: { segments: { first: string }[] } };
    const first = planned.wal.segments[0]!.first;
    const key = objectKeyFor(parseWalFileName(first)!);
    const original = (await backend.driver().get(key))!;
    await backend.remove(key);
    try {
      const base = userTempDir('lost');
      const r = await a.run(['restore', '--pgdata', join(base, 'data'), '--tablespace', `${spcOid}=${join(base, 'spc')}`]);
      expect(r.code, r.stderr).toBe(10);
      expect(r.stderr).toContain(`code=RESTORE_COMMAND_FAILED`);
      expect(r.stderr).toContain(`fetching ${first} as the server will (sh -c, in ${join(base, 'data')}, as uid ${pgUser().uid}) exited 255`);
      expect(r.stderr).toMatch(/is recorded in catalog .* as archived, but .* is missing/);
      expect(r.stderr.trim().split('\n').filter((l) => l.includes(' ERROR '))).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(join(base, 'data', 'pg_wal', 'walship-restore-check'))).toBe(false);
      rmSync(base, { recursive: true, force: true });
    } finally {
      await backend.overwrite(key, original);
    }
  });

  it('run as root on a data directory the server\'s user owns, checks restore_command as that user', async () => {
    if (backend.name !== 'filesystem' || process.getuid?.() !== 0) return; // the same check on every backend
    // Root's own catalog (walship uses only a catalog of the user it runs as) and config file.
    const base = userTempDir('as-root');
    const own = join(base, 'root-owned');
    mkdirSync(own);
    const catalog = join(own, 'catalog.db');
    const src = new Database(a.catalog, { readonly: true });
    await src.backup(catalog);
    src.close();
    const conf = join(own, 'walship.conf');
    writeFileSync(conf, `repo = '${a.repo}'\n`, { mode: 0o600 });
    const data = join(base, 'data');
    mkdirSync(data, { mode: 0o700 });
    chownSync(data, pgUser().uid, pgUser().gid);
    const restore = (spc: string) => walship(['restore', '--pgdata', data, '--force', '--config', conf, '--catalog', catalog, '--tablespace', `${spcOid}=${join(base, spc)}`], { env: a.env });
    // The server's user cannot read root's config file: the restore_command written would fail.
    const refused = await restore('spc1');
    expect(refused.code, refused.stderr).toBe(10);
    expect(refused.stderr).toContain(`as uid ${pgUser().uid}) exited 255: walship ERROR [archive-fetch] cannot read config file ${conf}: EACCES`);
    // Readable by it (the catalog still is not: the fetch verifies against the object alone).
    chmodSync(own, 0o755);
    chmodSync(conf, 0o644);
    const ok = await restore('spc2');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`from the data directory as uid ${pgUser().uid}, as the server will`);
    rmSync(base, { recursive: true, force: true });
  });

  it('plans with walship\'s own backup rather than the server\'s history file of it', async () => {
    const r = await a.run(['plan', '--target', 'latest', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).backup.name).toBe(backupId);
  });

  it('refuses an unreachable target before writing anything, and a non-empty directory', async () => {
    const base = userTempDir('refused');
    const pgdata = join(base, 'data');
    const early = await a.run(['restore', '--pgdata', pgdata, '--target-time', '2000-01-01T00:00:00Z']);
    expect(early.code).toBe(9);
    expect(early.stderr).toMatch(/code=TARGET_UNREACHABLE/);
    expect(existsSync(pgdata)).toBe(false);
    const unknown = await a.run(['restore', '--pgdata', pgdata, '--target-name', 'no_such_point']);
    expect(unknown.code).toBe(9);
    mkdirSync(pgdata);
    writeFileSync(join(pgdata, 'something'), 'x');
    const busy = await a.run(['restore', '--pgdata', pgdata, '--tablespace', `${spcOid}=${join(base, 'spc')}`]);
    expect(busy.code).toBe(2);
    expect(busy.stderr).toMatch(/is not empty: restore into an empty or new directory, or pass --force/);
    // The tablespace's original location holds the live one: refused, with the way out named.
    const spcBusy = await a.run(['restore', '--pgdata', join(base, 'data2')]);
    expect(spcBusy.code).toBe(2);
    expect(spcBusy.stderr).toMatch(new RegExp(`tablespace ${spcOid} location .* is not empty: empty it, or remap it with --tablespace ${spcOid}=DIR`));
    expect(existsSync(join(base, 'data2'))).toBe(false);
    rmSync(base, { recursive: true, force: true });
  });

  it('stops with the file named when a stored backup file is damaged', async () => {
    const key = `backups/${backupId}/chunk-000001.tar.zst`;
    const original = (await backend.driver().get(key))!;
    // Flip a byte inside the first file's data, keeping the tar and zstd framing valid.
    const tar = Buffer.from(decompress(original));
    // The first tar entry with some data (512-byte headers; size in octal at offset 124).
    let off = 0;
    let size = 0;
    for (;;) {
      size = parseInt(tar.subarray(off + 124, off + 136).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
      if (size >= 64) break;
      off += 512 + Math.ceil(size / 512) * 512;
    }
    const name = tar.subarray(off, off + 100).toString('latin1').replace(/\0.*$/s, '');
    tar[off + 512 + (size >> 1)] ^= 0xff;
    await backend.overwrite(key, compress(tar));
    try {
      const base = userTempDir('damaged');
      const r = await a.run(['restore', '--pgdata', join(base, 'data'), '--tablespace', `${spcOid}=${join(base, 'spc')}`]);
      expect(r.code, r.stderr).toBe(8);
      expect(r.stderr).toContain(`${name} (bytes 0-`);
      expect(r.stderr).toMatch(/does not match the manifest checksum; restore stopped/);
      // A half-restored directory cannot be started by mistake: pg_control is written last.
      expect(existsSync(join(base, 'data', 'global', 'pg_control'))).toBe(false);
      rmSync(base, { recursive: true, force: true });
    } finally {
      await backend.overwrite(key, original);
    }
  });
});
