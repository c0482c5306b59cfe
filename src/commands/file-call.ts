/**
 * One call of a per-file command (archive-push, archive-fetch and the helpers they start), as
 * cli/main.ts runs it in its own process and as the agent (src/agent/) runs it for a client: its
 * command line parsed without commander, its settings resolved from that command line and an
 * environment, and a failure logged and mapped to the exit code PostgreSQL must see. One code
 * path for both, so that an answer never depends on who gave it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SETTINGS, flagName, resolveConfig, unknownVariables, type Config } from '../config.js';
import { WalshipError, asWalshipError, effectiveFetchPolicy, exitCodeFor } from '../errors.js';
import { configureLog, logger } from '../log.js';
import { FILE_COMMANDS, type FileCommand } from './archive.js';
import type { Flags } from './options.js';

export interface FileCall {
  name: string;
  spec: FileCommand;
  flags: Flags;
  positionals: string[];
  /** The setting flags as given, `--flag=value` each (the helpers are started with them). */
  flagArgs: string[];
}

/**
 * Parses `archive-push` / `archive-fetch` arguments without commander; null when `name` is not a
 * per-file command or the line asks for help (commander prints it). Flags: every setting's
 * `--flag value` or `--flag=value`, and `--config`. USAGE error for anything else.
 */
export function parseFileCall(name: string, rest: readonly string[]): FileCall | null {
  const spec = FILE_COMMANDS[name];
  if (!spec || !isFileCall(name, rest)) return null;
  const flags: Flags = {};
  const positionals: string[] = [];
  const flagArgs: string[] = [];
  const known = new Map<string, string>([['config', 'config']]);
  for (const def of SETTINGS) known.set(flagName(def.key), camel(def.key));
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--') {
      positionals.push(...rest.slice(i + 1));
      break;
    }
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const flag = a.slice(2, eq < 0 ? undefined : eq);
    const prop = known.get(flag);
    if (!prop) throw new WalshipError('USAGE', `unknown option '--${flag}' (see walship ${name} --help)`);
    const value = eq < 0 ? rest[++i] : a.slice(eq + 1);
    if (value === undefined) throw new WalshipError('USAGE', `option '--${flag}' needs a value`);
    flags[prop] = value;
    flagArgs.push(`--${flag}=${value}`);
  }
  if (positionals.length !== spec.positionals) {
    throw new WalshipError('USAGE', `${name} takes ${spec.positionals === 1 ? 'one argument' : 'two arguments'}, got ${positionals.length} (see walship ${name} --help)`);
  }
  return { name, spec, flags, positionals, flagArgs };
}

/** Whether the line is a per-file command that is not asking for help. */
export function isFileCall(name: string, rest: readonly string[]): boolean {
  return FILE_COMMANDS[name] !== undefined && !rest.some((a) => a === '-h' || a === '--help');
}

const camel = (key: string) => key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** The setting flags of a command's parsed options, by setting key, and --config. */
export function settingsFromFlags(flags: Flags): { flags: Record<string, string | undefined>; configPath?: string } {
  const out: Record<string, string | undefined> = {};
  for (const def of SETTINGS) {
    const v = flags[camel(def.key)];
    if (typeof v === 'string') out[def.key] = v;
  }
  return { flags: out, configPath: typeof flags.config === 'string' ? flags.config : undefined };
}

/** Resolves a command's settings in `env` and configures logging; warns of WALSHIP_* variables that are no setting. */
export function settingsFor(name: string, flags: Flags, env: NodeJS.ProcessEnv = process.env): Config {
  const cfg = resolveConfig({ ...settingsFromFlags(flags), env });
  configureLog({ level: cfg.log_level, format: cfg.log_format, command: name });
  for (const v of unknownVariables(env)) {
    logger.warn(`environment variable ${v.name} is not a walship setting and is ignored${v.resembles ? ` (did you mean ${v.resembles}?)` : ''}`);
  }
  return cfg;
}

/** Whether PostgreSQL runs this call in standby mode: standby.signal in its working directory, the data directory. */
export function inStandbyMode(cwd: string = process.cwd()): boolean {
  try {
    return existsSync(join(cwd, 'standby.signal'));
  } catch {
    return false;
  }
}

/**
 * Logs a command's failure (quietly for "not in the archive") and returns its exit code: for
 * archive-fetch, by fetch_on_error (`auto`: in standby mode, a failure is "not available").
 */
export function failureCode(err: unknown, command: string, policy: Config['fetch_on_error'], cwd: string = process.cwd()): number {
  const we = asWalshipError(err);
  const standby = command === 'archive-fetch' && policy === 'auto' && inStandbyMode(cwd);
  const code = exitCodeFor(we, command, effectiveFetchPolicy(policy, standby));
  if (we.code === 'NOT_IN_ARCHIVE') {
    logger.debug(we.message, { code: we.code });
  } else {
    // A standby asks again: say so every time, loudly, since it goes on as if nothing happened.
    logger.error(we.message, { code: we.code, ...(standby && { then: 'standby mode: exit 3, the standby streams on and asks the archive again (fetch_on_error = auto)' }) });
    if (we.code === 'INTERNAL' && process.env.WALSHIP_DEBUG) process.stderr.write(`${(we.cause as Error)?.stack ?? ''}\n`);
  }
  return code;
}
