/**
 * The `walship` command line: the settings of each call, logging, and the mapping of every
 * error to its exit code, around the subcommands of src/commands/ (one file each). The
 * subcommands and what they use are loaded only when commander runs, and archive-push /
 * archive-fetch (run by PostgreSQL once per file) skip commander altogether: `fastPath` parses
 * their few arguments directly, saving its load time on every call.
 */
import type { Command } from 'commander';
import { resolveConfig, type Config } from '../config.js';
import { ExitCode, WalshipError, effectiveFetchPolicy, exitCodeFor } from '../errors.js';
import { configureLog } from '../log.js';
import { VERSION } from '../version.js';
import { EXIT_CODES_HELP } from '../commands/help.js';
import { failureCode, inStandbyMode, isFileCall, parseFileCall, settingsFor } from '../commands/file-call.js';
import type { Flags } from '../commands/options.js';

let currentCommand = '';
let fetchPolicy: Config['fetch_on_error'] = 'auto';

/** False on the per-file commands, which never print to stdout (creating the stream costs ~2 ms). */
let usesStdout = true;

async function finish(code: number): Promise<never> {
  if (usesStdout) await new Promise<void>((r) => (process.stdout.writableNeedDrain ? process.stdout.once('drain', () => r()) : r()));
  process.exit(code);
}

function fail(err: unknown): Promise<never> {
  return finish(failureCode(err, currentCommand, fetchPolicy));
}

/** Resolves the settings (file-call.ts) and remembers the fetch policy a failure is mapped by. */
function settings(name: string, flags: Flags): Config {
  const cfg = settingsFor(name, flags);
  fetchPolicy = cfg.fetch_on_error;
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
      const cfg = settings(name, flags);
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
 * archive-push / archive-fetch (and the helpers they start) without commander (file-call.ts).
 * Returns false when the line is not one of them or asks for help, so commander takes it.
 */
async function fastPath(argv: string[]): Promise<boolean> {
  const name = argv[2]!;
  if (!isFileCall(name, argv.slice(3))) return false;
  currentCommand = name;
  usesStdout = false;
  configureLog({ command: name });
  let flagArgs: string[] | null = null;
  try {
    const call = parseFileCall(name, argv.slice(3))!;
    flagArgs = call.flagArgs;
    await call.spec.run(settings(name, call.flags), call.positionals, call.flagArgs);
  } catch (err) {
    return fail(err);
  }
  await startAgent(name, flagArgs);
  return finish(ExitCode.OK);
}

/** After a call PostgreSQL made ran in node: the agent that will answer the next ones (agent/start.ts). */
async function startAgent(name: string, flagArgs: string[] | null): Promise<void> {
  if (flagArgs === null || (name !== 'archive-push' && name !== 'archive-fetch')) return;
  await (await import('../agent/start.js')).ensureAgent(flagArgs);
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
