/**
 * The setup most end-to-end suites share: a repository on one backend, a catalog, and a running
 * PostgreSQL cluster whose archive_command is walship archive-push into them.
 */
import { join } from 'node:path';
import { PgCluster, confString, removeTempDir, userTempDir, walshipCommand } from './pg.js';
import { walship, type RunResult } from './walship.js';
import type { RepoBackend } from './backends.js';

export interface Archiving {
  work: string;
  repo: string;
  catalog: string;
  /** Environment walship needs for this repository (S3 endpoint and credentials). */
  env: Record<string, string>;
  /** `--repo '…' --catalog '…'`, for command lines PostgreSQL runs. */
  settings: string;
  primary: PgCluster;
  /** restore_command for a cluster recovering from this repository. */
  restoreCommand: string;
  /** Runs walship with this repository and catalog (as the cluster's OS user unless asRoot). */
  run(args: string[], extraEnv?: Record<string, string>, opts?: { asRoot?: boolean }): Promise<RunResult>;
  /** Environment for `walship backup` to reach the primary. */
  pgEnv(): Record<string, string>;
  cleanup(): Promise<void>;
}

/**
 * A streaming standby of `a.primary`, restored from the repository's newest backup with
 * `walship restore --standby` (run with `catalog`), archiving into the same repository with that
 * catalog once promoted (or all along, with `archive_mode: 'always'` in `conf`). Started; caught
 * up with the primary's current LSN.
 */
export async function startStandby(a: Archiving, catalog: string, conf: Record<string, string | number> = {}): Promise<PgCluster> {
  const p = a.primary;
  const base = userTempDir('standby');
  const r = await walship(['restore', '--pgdata', join(base, 'data'), '--standby', '--repo', a.repo, '--catalog', catalog], { env: a.env, asUser: true });
  if (r.code !== 0) throw new Error(`walship restore --standby exited ${r.code}: ${r.stderr}`);
  const c = await PgCluster.create({
    baseDir: base,
    noInit: true,
    conf: {
      archive_mode: 'on',
      archive_command: confString(walshipCommand(`archive-push %p --repo '${a.repo}' --catalog '${catalog}'`)),
      primary_conninfo: confString(`host=${p.socketDir} port=${p.port} user=postgres`),
      ...conf,
    },
    env: a.env,
  });
  await c.start();
  await caughtUp(c, await p.value('SELECT pg_current_wal_lsn()'));
  return c;
}

/** Waits until `standby` has replayed WAL up to `lsn`. */
export async function caughtUp(standby: PgCluster, lsn: string): Promise<void> {
  for (const deadline = Date.now() + 60_000; (await standby.value(`SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`).catch(() => 'f')) !== 't'; ) {
    if (Date.now() > deadline) throw new Error(`the standby did not replay up to ${lsn}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startArchiving(
  backend: RepoBackend,
  prefix: string,
  conf: Record<string, string | number> = {},
  opts: { walSegSizeMb?: number } = {},
): Promise<Archiving> {
  const work = userTempDir(prefix);
  const { repo, env } = await backend.setup(work);
  const catalog = join(work, 'catalog', 'walship.db');
  const settings = `--repo '${repo}' --catalog '${catalog}'`;
  const primary = await PgCluster.create({
    conf: { archive_mode: 'on', archive_command: confString(walshipCommand(`archive-push %p ${settings}`)), timezone: "'UTC'", ...conf },
    env,
    walSegSizeMb: opts.walSegSizeMb,
  });
  await primary.start();
  return {
    work,
    repo,
    catalog,
    env,
    settings,
    primary,
    restoreCommand: walshipCommand(`archive-fetch %f %p ${settings}`),
    run: (args, extraEnv = {}, opts = {}) => walship([...args, '--repo', repo, '--catalog', catalog], { env: { ...env, ...extraEnv }, asUser: !opts.asRoot }),
    pgEnv: () => ({ WALSHIP_PG_HOST: primary.socketDir, WALSHIP_PG_PORT: String(primary.port), WALSHIP_PG_USER: 'postgres' }),
    async cleanup() {
      await primary.destroy();
      await backend.teardown?.();
      await removeTempDir(work);
    },
  };
}
