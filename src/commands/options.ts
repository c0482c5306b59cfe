/**
 * What the commands share: the setting options every command takes, the `--no-sync` option of
 * those that answer from the catalog, the note a stale answer starts with, whole-number flags,
 * and the shape of a command (CommandDef) that cli/main.ts registers.
 */
import type { Command } from 'commander';
import { SETTINGS, envName, flagName, type Config } from '../config.js';
import { WalshipError } from '../errors.js';
import type { ArchiveContext } from '../archive/context.js';
import type { Staleness } from '../sync/sync.js';

export type Flags = Record<string, string | boolean | undefined>;

/** A subcommand: its options and help (`define`, on the subcommand commander made), and what it does. */
export interface CommandDef {
  name: string;
  define(cmd: Command): Command;
  /** Runs with the resolved settings; returns the exit code (default 0). */
  run(cfg: Config, flags: Flags, args: string[]): Promise<number | void>;
}

/** The setting flags (every setting of config.ts, and --config), for every command. */
export function addSettingOptions(cmd: Command): Command {
  cmd.addOption(cmd.createOption('--config <path>', `config file (env WALSHIP_CONFIG; default /etc/walship/walship.conf)`));
  for (const def of SETTINGS) {
    const key = def.key as string;
    if (key.startsWith('s3_') && cmd.name() === 'init') continue;
    const opt = cmd.createOption(`--${flagName(key)} <value>`, `${def.description} (env ${envName(key)})`);
    if ('values' in def && def.values) opt.choices(def.values as readonly string[]);
    cmd.addOption(opt);
  }
  return cmd;
}

/** The `--no-sync` option of the commands that answer from the catalog. */
export function addSyncOption(cmd: Command): Command {
  return cmd.option('--no-sync', 'answer from the catalog as it is, without bringing it up to date with the repository first');
}

/**
 * Brings the catalog up to date before a command answers from it (sync/sync.ts): null when it
 * is, else how stale the answer may be (also logged).
 */
export async function syncFirst(ctx: ArchiveContext, flags: Flags): Promise<Staleness | null> {
  const { syncForReading } = await import('../sync/sync.js');
  return syncForReading(ctx, flags.sync === false);
}

/** The line a text answer starts with when the catalog could not be brought up to date. */
export function staleNote(stale: Staleness | null): string {
  if (!stale) return '';
  return `note: this answer is from the catalog as of its last sync with the repository (${stale.lastSyncedAt ?? 'never'}): ${stale.reason}\n\n`;
}

/** A command-line value that must be a whole number >= `min`; USAGE error naming the flag otherwise. */
export function wholeNumberFlag(name: string, value: unknown, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new WalshipError('USAGE', `--${name} must be a whole number >= ${min}, got '${String(value)}'`);
  return n;
}
