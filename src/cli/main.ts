/**
 * The `walship` command line: the settings of each call, logging, and the mapping of every
 * error to its exit code, around the subcommands of src/commands/ (one file each). The
 * subcommands and what they use are loaded only when commander runs, and archive-push /
 * archive-fetch (run by PostgreSQL once per file) skip commander altogether: `fastPath` parses
 * their few arguments directly, saving its load time on every call.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { SETTINGS, flagName, resolveConfig, unknownVariables, type Config } from '../config.js';
import { ExitCode, WalshipError, asWalshipError, effectiveFetchPolicy, exitCodeFor } from '../errors.js';
import { configureLog, logger } from '../log.js';
import { VERSION } from '../version.js';
import { EXIT_CODES_HELP } from '../commands/help.js';
import { FILE_COMMANDS } from '../commands/archive.js';
import type { Flags } from '../commands/options.js';

function settingsFromFlags(flags: Flags): { flags: Record<string, string | undefined>; configPath?: string } {
  const out: Record<string, string | undefined> = {};
  for (const def of SETTINGS) {
    const camel = (def.key as string).replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    const v = flags[camel];
    if (typeof v === 'string') out[def.key] = v;
  }
  return { flags: out, configPath: typeof flags.config === 'string' ? flags.config : undefined };
}

let currentCommand = '';
let fetchPolicy: Config['fetch_on_error'] = 'auto';

/** Whether PostgreSQL runs this call in standby mode: standby.signal in its working directory, the data directory. */
function inStandbyMode(): boolean {
  try {
    return existsSync(join(process.cwd(), 'standby.signal'));
  } catch {
    return false;
  }
}

/** False on the per-file commands, which never print to stdout (creating the stream costs ~2 ms). */
let usesStdout = true;

async function finish(code: number): Promise<never> {
  if (usesStdout) await new Promise<void>((r) => (process.stdout.writableNeedDrain ? process.stdout.once('drain', () => r()) : r()));
  process.exit(code);
}

function fail(err: unknown): Promise<never> {
  const we = asWalshipError(err);
  const standby = currentCommand === 'archive-fetch' && fetchPolicy === 'auto' && inStandbyMode();
  const code = exitCodeFor(we, currentCommand, effectiveFetchPolicy(fetchPolicy, standby));
  if (we.code === 'NOT_IN_ARCHIVE') {
    logger.debug(we.message, { code: we.code });
  } else {
    // A standby asks again: say so every time, loudly, since it goes on as if nothing happened.
    logger.error(we.message, { code: we.code, ...(standby && { then: 'standby mode: exit 3, the standby streams on and asks the archive again (fetch_on_error = auto)' }) });
    if (we.code === 'INTERNAL' && process.env.WALSHIP_DEBUG) process.stderr.write(`${(we.cause as Error)?.stack ?? ''}\n`);
  }
  return finish(code);
}

/** Resolves the settings and configures logging; warns of WALSHIP_* variables that are no setting. */
function settingsFor(name: string, flags: Flags): Config {
  const cfg = resolveConfig(settingsFromFlags(flags));
  fetchPolicy = cfg.fetch_on_error;
  configureLog({ level: cfg.log_level, format: cfg.log_format, command: name });
  for (const v of unknownVariables(process.env)) {
    logger.warn(`environment variable ${v.name} is not a walship setting and is ignored${v.resembles ? ` (did you mean ${v.resembles}?)` : ''}`);
  }
  return cfg;
}

/** Wraps a subcommand: resolves settings, configures logging, maps errors to exit codes. */
function action(name: string, fn: (cfg: Config, flags: Flags, args: string[]) => Promise<number | void>) {
  return async (...argv: unknown[]) => {
    currentCommand = name;
    const cmd = argv[argv.length - 1] as Command;
    const flags = cmd.opts() as Flags;
    const args = argv.slice(0, -2) as string[];
    try {
      const cfg = settingsFor(name, flags);
      const code = await fn(cfg, flags, args);
      await finish(code ?? ExitCode.OK);
    } catch (err) {
      await fail(err);
    }
  };
}

export async function buildProgram(): Promise<Command> {
  const { Command } = await import('commander');
  const { COMMANDS, GROUPS } = await import('../commands/index.js');
  const program = new Command('walship')
    .description('PostgreSQL continuous archiving: archive_command / restore_command with a time-aware catalog')
    .version(VERSION, '-V, --version')
    .addHelpText('after', `\n${EXIT_CODES_HELP}`);
  // Set before the subcommands are added: they inherit these settings.
  program.exitOverride();
  program.configureOutput({
    writeErr: (s) => process.stderr.write(s),
    outputError: (s, write) => write(`walship: ${s.replace(/^error: /, '').trim()} (see walship --help)\n`),
  });
  const groups = new Map<string, Command>();
  const group = (name: string): Command => {
    if (!groups.has(name)) groups.set(name, program.command(name).description(GROUPS[name] ?? ''));
    return groups.get(name)!;
  };
  for (const def of COMMANDS) {
    const [first, sub] = def.name.split(' ');
    def.define(sub ? group(first!).command(sub) : program.command(first!)).action(action(def.name, def.run));
  }
  return program;
}

/**
 * Parses `archive-push` / `archive-fetch` arguments without commander. Returns false when the
 * line asks for help, so commander prints it. Flags: every setting's `--flag value` or
 * `--flag=value`, and `--config`.
 */
async function fastPath(argv: string[]): Promise<boolean> {
  const name = argv[2]!;
  const spec = FILE_COMMANDS[name];
  const rest = argv.slice(3);
  if (!spec || rest.some((a) => a === '-h' || a === '--help')) return false;
  currentCommand = name;
  usesStdout = false;
  configureLog({ command: name });
  const flags: Flags = {};
  const positionals: string[] = [];
  const flagArgs: string[] = [];
  const known = new Map<string, string>([['config', 'config']]);
  for (const def of SETTINGS) {
    known.set(flagName(def.key), (def.key as string).replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()));
  }
  try {
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
    await spec.run(settingsFor(name, flags), positionals, flagArgs);
  } catch (err) {
    return fail(err);
  }
  return finish(ExitCode.OK);
}

async function main(argv: string[]): Promise<void> {
  if (await fastPath(argv)) return;
  const program = await buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const ce = err as { code?: string; exitCode?: number; message?: string };
    if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
      if (ce.exitCode === 0) return finish(0);
      // A bad command line is a USAGE error, mapped as every error is (errors.ts: `status` answers
      // "unknown"). A malformed restore_command must not look like the end of the archive: it
      // fails as any failure does under fetch_on_error (from the environment or the config file, else auto).
      const usage = new WalshipError('USAGE', ce.message ?? '');
      if (argv[2] !== 'archive-fetch') return finish(exitCodeFor(usage, argv[2] ?? ''));
      let policy: Config['fetch_on_error'] = 'auto';
      try {
        policy = resolveConfig({ flags: {} }).fetch_on_error;
      } catch {
        /* a configuration that does not resolve: the default */
      }
      return finish(exitCodeFor(usage, 'archive-fetch', effectiveFetchPolicy(policy, inStandbyMode())));
    }
    await fail(err);
  }
}

void main(process.argv);
