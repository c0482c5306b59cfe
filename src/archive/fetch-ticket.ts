/**
 * The fetch ticket (`fetch.ticket` in the default spool directory): what the compiled entry
 * walship-fetch (src/archive/walship-fetch.c) needs to deliver a spooled segment without
 * starting node, written by the archive-fetch calls that run in node.
 *
 * walship-fetch cannot read walship's settings, so the ticket records what they were made of,
 * and the repository they name: the setting flags as given, every WALSHIP_* variable, the config
 * file's path and state (or its absence), the working directory and pg_wal's real path. A call
 * whose flags, WALSHIP_* variables, config file state, working directory and pg_wal all match
 * has the very settings of the call that wrote the ticket, so the ticket's repository (and log
 * settings) are its own. Any difference, and walship-fetch hands the call to node unchanged.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { logger } from '../log.js';
import { formatKeyValues } from './key-values.js';

export const TICKET = 'fetch.ticket';
/** The ticket's format (its first line); walship-fetch checks it. */
const TICKET_FORMAT = '1';

export interface TicketInput {
  cfg: Config;
  /** The setting flags of this call, as `--flag=value`, in order. */
  flagArgs: readonly string[];
  /** The real directory of the destination (pg_wal). */
  destDir: string;
  /** The real working directory (the data directory, when PostgreSQL runs the command). */
  cwd: string;
  /** The repository, canonical. */
  repo: string;
}

/** The ticket's text, or null when a value cannot be carried by the line format. */
export function fetchTicketText(t: TicketInput, env: NodeJS.ProcessEnv = process.env): string | null {
  const vars = Object.entries(env)
    .filter(([k, v]) => k.startsWith('WALSHIP_') && v !== undefined)
    .map(([k, v]) => `${k}=${v}`)
    .sort();
  try {
    return formatKeyValues([
      ['format', TICKET_FORMAT],
      ['cwd', t.cwd],
      ['dest_dir', t.destDir],
      ['repo', t.repo],
      ['config', t.cfg.configStamp.path],
      ['config_state', t.cfg.configStamp.state],
      ['log_level', t.cfg.log_level],
      ['log_format', t.cfg.log_format],
      ...t.flagArgs.map((f) => ['flag', f] as const),
      ...vars.map((v) => ['env', v] as const),
    ]);
  } catch {
    return null;
  }
}

/** Writes `spool/fetch.ticket` (whole, by a rename) unless it already says the same. Never fails. */
export function writeFetchTicket(spool: string, t: TicketInput): void {
  // walship-fetch is built for Linux only (it reads /proc).
  if (process.platform !== 'linux') return;
  const text = fetchTicketText(t);
  if (text === null) return;
  const path = join(spool, TICKET);
  try {
    if (readFileSync(path, 'utf8') === text) return;
  } catch {
    /* none yet */
  }
  const tmp = join(spool, `.${TICKET}.${process.pid}`);
  try {
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, path);
  } catch (err) {
    logger.debug('cannot write the fetch ticket; every fetch runs in node', { path, error: (err as Error).message });
  }
}
