/**
 * Tickets: what the compiled entries (src/archive/native/) need to answer a call without
 * starting node, written by the calls that run in node. `fetch.ticket` sits in the default spool
 * directory (for walship-fetch), `push.ticket` in the push directory beside the data directory
 * (for walship-push); both places are found from pg_wal's real path alone (`besideDataDir`).
 *
 * The compiled entries cannot read walship's settings, so a ticket records what they were made
 * of, and what they name: the setting flags as given, every WALSHIP_* variable, the config file's
 * path and state (or its absence), the working directory and pg_wal's real path; then the
 * repository, the log settings and (push) the read-ahead state directory. A call whose flags,
 * WALSHIP_* variables, config file state, working directory and pg_wal all match has the very
 * settings of the call that wrote the ticket, so the rest of the ticket is its own. Any
 * difference, and the compiled entry hands the call to node unchanged.
 */
import { realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config.js';
import { logger } from '../log.js';
import { formatKeyValues } from './key-values.js';
import { writeFileAtomicSync } from '../local/atomic-write.js';
import { readPrivateFile } from '../local/private.js';

export const FETCH_TICKET = 'fetch.ticket';
export const PUSH_TICKET = 'push.ticket';
/** The tickets' format (their first line); the compiled entries check it. */
const TICKET_FORMAT = '1';

export interface TicketInput {
  cfg: Config;
  /** The setting flags of this call, as `--flag=value`, in order. */
  flagArgs: readonly string[];
  /** The real working directory (the data directory, when PostgreSQL runs the command). */
  cwd: string;
  /** The repository, canonical. */
  repo: string;
  /** The places the entry checks or uses: fetch `dest_dir`; push `wal_dir` and `state_dir`. */
  places: readonly (readonly [string, string])[];
}

/** The ticket's text, or null when a value cannot be carried by the line format. */
export function ticketText(t: TicketInput, env: NodeJS.ProcessEnv = process.env): string | null {
  const vars = Object.entries(env)
    .filter(([k, v]) => k.startsWith('WALSHIP_') && v !== undefined)
    .map(([k, v]) => `${k}=${v}`)
    .sort();
  try {
    return formatKeyValues([
      ['format', TICKET_FORMAT],
      ['cwd', t.cwd],
      ...t.places,
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

/** Writes `dir/file` (whole, by a rename; `dir` is a private directory) unless it already says the same. Never fails. */
export function writeTicket(dir: string, file: string, t: TicketInput): void {
  // The compiled entries are built for Linux only (they read /proc).
  if (process.platform !== 'linux') return;
  const text = ticketText(t);
  if (text === null) return;
  const path = join(dir, file);
  if (readPrivateFile(path) === text) return;
  try {
    writeFileAtomicSync(path, text);
  } catch (err) {
    logger.debug(`cannot write the ${file}; these calls run in node`, { path, error: (err as Error).message });
  }
}

/** 48 bits of FNV-1a 64 as 12 hex digits: a short stable name, not a security measure (no crypto load per call). */
export function shortHash(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text, 'utf8')) h = ((h ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return (h >> 16n).toString(16).padStart(12, '0');
}

/**
 * A directory `<prefix>-<hash of pg_wal's real path>` beside the data directory (or beside
 * pg_wal's real directory when pg_wal is a link to another place), so that it is on pg_wal's
 * filesystem; `walDir` is pg_wal's real path. The compiled entries find it the same way.
 */
export function besideDataDir(walDir: string, prefix: string): { cwd: string; dir: string } {
  let cwd = '';
  try {
    cwd = realpathSync(process.cwd());
  } catch {
    /* no usable working directory */
  }
  const parent = dirname(walDir);
  const base = parent === cwd && cwd !== '/' ? dirname(cwd) : parent;
  return { cwd, dir: join(base, `${prefix}-${shortHash(walDir)}`) };
}
