/**
 * `walship restore`: plan (refusing an unreachable target before touching anything), restore the
 * chosen walship backup into --pgdata, and write the recovery settings so that starting the
 * server performs the point-in-time recovery.
 */
import { accessSync, constants, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Config } from '../config.js';
import { WalshipError } from '../errors.js';
import { Catalog } from '../catalog/catalog.js';
import { loadPlannerInput } from './catalog-input.js';
import { listBackups } from '../backup/list.js';
import type { StorageDriver } from '../storage/driver.js';
import { parseRepoUrl } from '../storage/open.js';
import { planRecovery, refusalLine, type Plan, type Target } from './plan.js';
import type { PlannerInput } from './model.js';
import { shellQuote, targetFromFlags, timelineFromFlags } from './cli.js';
import { wholeNumberFlag } from '../cli/flags.js';
import { restoreBackup, type RestoreResult } from './restore.js';
import { checkRestoreCommand, type RestoreCheck } from './restore-check.js';

type Flags = Record<string, unknown>;

const TARGET_FLAGS = ['targetTime', 'targetName', 'targetLsn', 'targetXid', 'target'] as const;

/**
 * The restore_command the restored server runs: this very walship (absolute paths, so the
 * server's PATH does not matter; its compiled archive-fetch entry when the build made one), the
 * same repository and catalog, and the settings that reach the repository (credentials stay with
 * the SDK's provider chain, never on a command line).
 */
export function restoreCommandFor(cfg: Config, repoUrl: string): string {
  const script = realpathSync(process.argv[1]!);
  const compiled = join(dirname(dirname(script)), 'dist', 'walship-fetch');
  let entry = [process.execPath, script];
  try {
    accessSync(compiled, constants.X_OK);
    entry = [compiled];
  } catch {
    /* not built: node runs every call */
  }
  // PostgreSQL runs it in the data directory: every path in it is absolute.
  const parts = [...entry, 'archive-fetch', '%f', '%p', '--repo', repoUrl, '--catalog', resolve(cfg.catalog)];
  if (cfg.configFile) parts.push('--config', resolve(cfg.configFile));
  if (cfg.spool_dir) parts.push('--spool-dir', resolve(cfg.spool_dir));
  if (parseRepoUrl(repoUrl).kind === 's3') {
    if (cfg.s3_endpoint) parts.push('--s3-endpoint', cfg.s3_endpoint);
    parts.push('--s3-region', cfg.s3_region);
    if (cfg.s3_force_path_style) parts.push('--s3-force-path-style', 'on');
    parts.push('--s3-request-timeout', String(cfg.s3_request_timeout), '--s3-max-retries', String(cfg.s3_max_retries));
  }
  return parts.map(shellQuote).join(' ');
}

function tablespaceRemap(v: unknown): Map<string, string> {
  const out = new Map<string, string>();
  const list: string[] = Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : [];
  for (const item of list) {
    const m = /^(\d+)=(.+)$/.exec(item);
    if (!m) throw new WalshipError('USAGE', `--tablespace takes OID=DIR (the OIDs are in the backup's manifest), not "${item}"`);
    out.set(m[1]!, resolve(m[2]!));
  }
  return out;
}

/**
 * What restore plans with: the catalog's planner input with only walship's own complete backups
 * (the only ones holding data to restore), or only `backup`. USAGE when `backup` is not one of
 * them, TARGET_UNREACHABLE when there is none.
 */
export function restorableInput(cat: Catalog, backup?: string): PlannerInput {
  const restorable = new Set(listBackups(cat).filter((b) => b.restorable).map((b) => b.name));
  if (backup !== undefined && !restorable.has(backup)) {
    throw new WalshipError('USAGE', `backup "${backup}" is not a complete walship backup of this repository (see walship backups)`);
  }
  const input = loadPlannerInput(cat);
  const backups = input.backups.filter((b) => restorable.has(b.name) && (backup === undefined || b.name === backup));
  if (backups.length === 0) {
    throw new WalshipError('TARGET_UNREACHABLE', 'no complete walship backup in this repository: take one with walship backup');
  }
  return { ...input, backups };
}

export interface RestoreOutcome {
  plan: Plan;
  result: RestoreResult;
  /** restore_command, run once for the first segment recovery needs (restore-check.ts). */
  check: RestoreCheck;
}

export async function runRestore(
  ctx: { storage: StorageDriver; repoUrl: string; catalogPath: string },
  cfg: Config,
  flags: Flags,
): Promise<RestoreOutcome> {
  if (typeof flags.pgdata !== 'string' || flags.pgdata === '') {
    throw new WalshipError('USAGE', 'give the data directory to restore into: --pgdata DIR');
  }
  const anyTarget = TARGET_FLAGS.some((k) => typeof flags[k] === 'string');
  const target: Target = anyTarget ? targetFromFlags(flags as Record<string, string | boolean | undefined>) : { type: 'latest' };
  const timeline = timelineFromFlags(flags as Record<string, string | boolean | undefined>);
  const parallel = wholeNumberFlag('parallel', flags.parallel ?? '2', 1);
  const remap = tablespaceRemap(flags.tablespace);

  const restoreCommand = restoreCommandFor(cfg, ctx.repoUrl);
  const plan = Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) =>
    planRecovery(restorableInput(cat, typeof flags.backup === 'string' ? flags.backup : undefined), target, {
      restoreCommand,
      timeline,
      inclusive: !flags.exclusive,
    }),
  );
  if (!plan.reachable) throw new WalshipError('TARGET_UNREACHABLE', refusalLine(plan));

  const result = await restoreBackup(ctx.storage, plan.backup.name, {
    pgdata: flags.pgdata,
    force: !!flags.force,
    tablespaceRemap: remap,
    standby: !!flags.standby,
    recoveryConf: plan.conf,
    parallel,
    progress: !flags.json && process.stderr.isTTY === true,
  });
  const first = plan.wal.segments[0]?.first;
  if (!first) throw new WalshipError('INTERNAL', `the plan for backup ${plan.backup.name} names no WAL segment`);
  // Long enough for a slow S3 store to answer with every retry.
  const timeoutMs = (cfg.s3_max_retries + 2) * cfg.s3_request_timeout + 60_000;
  const check = await checkRestoreCommand(result.pgdata, restoreCommand, first, timeoutMs);
  return { plan, result, check };
}

export function renderRestore({ plan, result, check }: RestoreOutcome, standby: boolean): string {
  const lines = [
    `restored backup ${result.backup.id} ("${result.backup.label}", consistent at ${result.backup.stopLsn}, ${result.backup.stopTime})`,
    `  into ${result.pgdata}: ${result.files} files, ${(result.bytes / 1048576).toFixed(1)} MiB, every piece checked against the manifest`,
    ...result.tablespaces.map((t) => `  tablespace ${t.oid} at ${t.location}`),
    `  recovery: ${plan.stop.description}, on timeline ${plan.timeline}`,
    `  settings written to ${result.pgdata}/postgresql.auto.conf:`,
    ...plan.conf.map((l) => `    ${l}`),
    `  ${standby ? 'standby.signal' : 'recovery.signal'} written`,
    `  restore_command checked: it fetched ${check.file} from the data directory as uid ${check.uid}, as the server will (${(check.ms / 1000).toFixed(1)} s)`,
    '',
  ];
  if (process.getuid?.() === 0) lines.push(`The files belong to root: first  chown -R postgres: ${shellQuote(result.pgdata)}  (or the server's OS user)`);
  lines.push(`Start the server:  pg_ctl -D ${shellQuote(result.pgdata)} start`);
  return lines.join('\n') + '\n';
}
