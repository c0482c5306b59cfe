/**
 * What a restore of walship's own backups recovers with: the planner's input narrowed to the
 * backups that hold data to restore, and the restore_command the restored server runs (also
 * the default `walship plan` writes).
 */
import { accessSync, constants, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Config } from '../config.js';
import { WalshipError } from '../errors.js';
import type { Catalog } from '../catalog/catalog.js';
import { listBackups } from '../backup/list.js';
import { parseRepoUrl } from '../storage/open.js';
import { loadPlannerInput } from './catalog-input.js';
import type { PlannerInput } from './input.js';

/** A word for a shell command line (PostgreSQL runs restore_command through /bin/sh). */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** walship archive-fetch %f %p, pointed at this repository (and config file, when one was given: an absolute path, as the server runs it in the data directory). */
export function defaultRestoreCommand(repoUrl: string, configPath?: string): string {
  const parts = ['walship', 'archive-fetch', '%f', '%p', '--repo', shellQuote(repoUrl)];
  if (configPath) parts.push('--config', shellQuote(configPath));
  return parts.join(' ');
}

/**
 * The restore_command the restored server runs: this very walship (absolute paths, so the
 * server's PATH does not matter; its client, which the agent answers, when the build made one), the
 * same repository and catalog, and the settings that reach the repository (credentials stay with
 * the SDK's provider chain, never on a command line).
 */
export function restoreCommandFor(cfg: Config, repoUrl: string): string {
  const script = realpathSync(process.argv[1]!);
  const compiled = join(dirname(dirname(script)), 'dist', 'walship-client');
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
