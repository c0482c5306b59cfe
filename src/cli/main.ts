/**
 * The `walship` command line. Each subcommand's module is imported only when it runs, so
 * archive-push and archive-fetch load nothing they do not use.
 */
import { Command, Option, CommanderError } from 'commander';
import { SETTINGS, flagName, envName, resolveConfig, type Config } from '../config.js';
import { ExitCode, WalshipError, asWalshipError, exitCodeFor } from '../errors.js';
import { configureLog, logger } from '../log.js';
import { VERSION } from '../version.js';
import { EXIT_CODES_HELP, FETCH_EXIT_HELP } from './help.js';

type Flags = Record<string, string | boolean | undefined>;

function addSettingOptions(cmd: Command): Command {
  cmd.addOption(new Option('--config <path>', `config file (env WALSHIP_CONFIG; default /etc/walship/walship.conf)`));
  for (const def of SETTINGS) {
    const key = def.key as string;
    if (key.startsWith('s3_') && cmd.name() === 'init') continue;
    const opt = new Option(`--${flagName(key)} <value>`, `${def.description} (env ${envName(key)})`);
    if ('values' in def && def.values) opt.choices(def.values as readonly string[]);
    cmd.addOption(opt);
  }
  return cmd;
}

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
let fetchPolicy: Config['fetch_on_error'] = 'abort';

async function finish(code: number): Promise<never> {
  await new Promise<void>((r) => (process.stdout.writableNeedDrain ? process.stdout.once('drain', () => r()) : r()));
  process.exit(code);
}

function fail(err: unknown): Promise<never> {
  const we = asWalshipError(err);
  const code = exitCodeFor(we, currentCommand, fetchPolicy);
  if (we.code === 'NOT_IN_ARCHIVE') {
    logger.debug(we.message, { code: we.code });
  } else {
    logger.error(we.message, { code: we.code });
    if (we.code === 'INTERNAL' && process.env.WALSHIP_DEBUG) process.stderr.write(`${(we.cause as Error)?.stack ?? ''}\n`);
  }
  return finish(code);
}

/** Wraps a subcommand: resolves settings, configures logging, maps errors to exit codes. */
function action(name: string, fn: (cfg: Config, flags: Flags, args: string[]) => Promise<number | void>) {
  return async (...argv: unknown[]) => {
    currentCommand = name;
    const cmd = argv[argv.length - 1] as Command;
    const flags = cmd.opts() as Flags;
    const args = argv.slice(0, -2) as string[];
    try {
      const cfg = resolveConfig(settingsFromFlags(flags));
      fetchPolicy = cfg.fetch_on_error;
      configureLog({ level: cfg.log_level, format: cfg.log_format, command: name });
      const code = await fn(cfg, flags, args);
      await finish(code ?? ExitCode.OK);
    } catch (err) {
      await fail(err);
    }
  };
}

async function archiveContext(cfg: Config) {
  const { requireRepo } = await import('../config.js');
  const { openStorage, parseRepoUrl } = await import('../storage/open.js');
  const url = requireRepo(cfg);
  const storage = await openStorage(url, cfg);
  return { storage, repoUrl: parseRepoUrl(url).canonical, catalogPath: cfg.catalog, compressLevel: cfg.compress_level };
}

export function buildProgram(): Command {
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

  addSettingOptions(
    program
      .command('archive-push')
      .description("archive one WAL file (archive_command = 'walship archive-push %p')")
      .argument('<path>', 'the WAL segment, .partial, .history or .backup file (%p)')
      .addHelpText('after', `\n${EXIT_CODES_HELP}`),
  ).action(
    action('archive-push', async (cfg, _flags, [path]) => {
      const { pushFile } = await import('../archive/push.js');
      await pushFile(await archiveContext(cfg), path!);
    }),
  );

  addSettingOptions(
    program
      .command('archive-fetch')
      .description("deliver one archived WAL file (restore_command = 'walship archive-fetch %f %p')")
      .argument('<name>', 'the WAL file name PostgreSQL asks for (%f)')
      .argument('<dest>', 'where to write it, relative to the data directory (%p)')
      .addHelpText('after', `\n${FETCH_EXIT_HELP}`),
  ).action(
    action('archive-fetch', async (cfg, _flags, [name, dest]) => {
      const { fetchFile } = await import('../archive/fetch.js');
      await fetchFile(await archiveContext(cfg), name!, dest!);
    }),
  );

  addSettingOptions(
    program
      .command('info')
      .description('show the repository identity, archived WAL per timeline with gaps, history files, backups')
      .option('--json', 'print a JSON document (shape in docs/commands.md)'),
  ).action(
    action('info', async (cfg, flags) => {
      const ctx = await archiveContext(cfg);
      const { readIdentity } = await import('../archive/identity.js');
      const { Catalog } = await import('../catalog/catalog.js');
      const { buildInfo, renderInfo } = await import('../catalog/info.js');
      await ctx.storage.check();
      const identity = await readIdentity(ctx.storage);
      const cat = Catalog.open(ctx.catalogPath)!;
      try {
        cat.checkRepository(ctx.repoUrl);
        const report = buildInfo(cat, ctx.repoUrl, identity);
        process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : renderInfo(report));
      } finally {
        cat.close();
      }
    }),
  );

  addSettingOptions(
    program
      .command('init')
      .description('create the repository (and its identity, with --pgdata) and the catalog')
      .option('--pgdata <dir>', "bind the repository to this cluster now (reads a segment's header in DIR/pg_wal)"),
  ).action(
    action('init', async (cfg, flags) => {
      const ctx = await archiveContext(cfg);
      const { initRepository } = await import('../archive/init.js');
      const res = await initRepository(ctx, typeof flags.pgdata === 'string' ? flags.pgdata : undefined);
      process.stdout.write(`${res}\n`);
    }),
  );

  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return finish(0);
      // A malformed restore_command must stop recovery, not look like the end of the archive.
      const isFetch = argv[2] === 'archive-fetch';
      return finish(isFetch ? exitCodeFor(new WalshipError('USAGE', err.message), 'archive-fetch', 'abort') : ExitCode.USAGE);
    }
    await fail(err);
  }
}

void main(process.argv);
