/**
 * The commands PostgreSQL runs once per file: `archive-push` (archive_command) and
 * `archive-fetch` (restore_command), and the helpers they start (`archive-push-ahead`, the
 * background pusher; `archive-prefetch`, the prefetcher). cli/main.ts runs them without commander
 * (FILE_COMMANDS, with their positional arguments and the setting flags as given, which the
 * helpers are started with); the CommandDefs give commander their help. The repository is opened
 * only when needed: a push answered by read-ahead or a fetch answered from the prefetch spool
 * never loads a storage driver.
 */
import type { Config } from '../config.js';
import { openArchiveContext } from '../archive/context.js';
import type { ArchiveContext } from '../archive/context.js';
import type { StartPusher } from '../archive/readahead.js';
import type { StartPrefetcher } from '../archive/prefetch.js';
import { EXIT_CODES_HELP, FETCH_EXIT_HELP } from './help.js';
import { addSettingOptions, type CommandDef } from './options.js';

/** What the agent lends a call: its repository context, and its own way to run the background helpers. */
export interface AgentServices {
  open: () => Promise<ArchiveContext>;
  startPusher: StartPusher;
  startPrefetcher: StartPrefetcher;
}

/**
 * Where a call in node has the helper it would start run (agent/start.ts): by the agent it
 * starts for its data directory, handed the helper; not at all when an agent is on its way
 * (which runs it for the next calls; the call does its own file's work itself, false); else
 * detached, as without an agent.
 */
async function helperOfNode(flagArgs: readonly string[], helper: string[], detached: () => Promise<boolean>): Promise<boolean> {
  const state = await (await import('../agent/start.js')).ensureAgent(flagArgs, helper);
  if (state === 'spawned') return true;
  if (state === 'starting') return false;
  return detached();
}

/**
 * A call in node: its pusher in the agent it starts (see helperOfNode); its prefetcher detached,
 * as without an agent (a prefetcher in an agent would end with it, when a new config file or
 * build makes the agent exit in the middle of a recovery).
 */
const inNode = (flagArgs: readonly string[]): Omit<AgentServices, 'open'> => ({
  startPusher: (dir, log) => helperOfNode(flagArgs, ['--push-ahead', dir], async () => (await import('../archive/readahead.js')).detachedPusher(flagArgs)(dir, log)),
  startPrefetcher: async (spool, name, log) => (await import('../archive/prefetch.js')).detachedPrefetcher(flagArgs)(spool, name, log),
});

export interface FileCommand {
  positionals: number;
  /** Without `agent`, the repository context is opened for this call and the helpers run detached. */
  run(cfg: Config, args: string[], flagArgs: string[], agent?: AgentServices): Promise<unknown>;
}

export const FILE_COMMANDS: Record<string, FileCommand> = {
  'archive-push': {
    positionals: 1,
    run: async (cfg, [path], flagArgs, agent) =>
      (await import('../archive/readahead.js'))
        .archivePushWithReadahead(cfg, path!, agent?.open ?? (() => openArchiveContext(cfg)), flagArgs, (agent ?? inNode(flagArgs)).startPusher)
        // push_queue_max: a push the repository cannot take, while pg_wal fills (off by default).
        .catch(async (err: unknown) => (await import('../archive/queue-guard.js')).dropIfQueueFull(cfg, path!, err)),
  },
  'archive-push-ahead': {
    positionals: 1,
    run: async (cfg, [walDir]) => (await import('../archive/pusher.js')).runPusherCommand(cfg, walDir!, () => openArchiveContext(cfg)),
  },
  'archive-fetch': {
    positionals: 2,
    run: async (cfg, [name, dest], flagArgs, agent) => (await import('../archive/prefetch.js')).archiveFetchWithPrefetch(cfg, name!, dest!, agent?.open ?? (() => openArchiveContext(cfg)), flagArgs, (agent ?? inNode(flagArgs)).startPrefetcher),
  },
  'archive-prefetch': {
    positionals: 1,
    run: async (cfg, [name]) => (await import('../archive/prefetcher.js')).runPrefetcher(cfg, name!, () => openArchiveContext(cfg)),
  },
};

export const archivePush: CommandDef = {
  name: 'archive-push',
  define: (cmd) =>
    addSettingOptions(
      cmd
        .description("archive one WAL file (archive_command = 'walship archive-push %p')")
        .argument('<path>', 'the WAL segment, .partial, .history or .backup file (%p)')
        .addHelpText('after', `\n${EXIT_CODES_HELP}`),
    ),
  // cli/main.ts runs it without commander; commander only prints its help. Kept on one code path regardless.
  run: (cfg, _flags, args) => FILE_COMMANDS['archive-push']!.run(cfg, args, []).then(() => undefined),
};

export const archiveFetch: CommandDef = {
  name: 'archive-fetch',
  define: (cmd) =>
    addSettingOptions(
      cmd
        .description("deliver one archived WAL file (restore_command = 'walship archive-fetch %f %p')")
        .argument('<name>', 'the WAL file name PostgreSQL asks for (%f)')
        .argument('<dest>', 'where to write it, relative to the data directory (%p)')
        .addHelpText('after', `\n${FETCH_EXIT_HELP}`),
    ),
  run: (cfg, _flags, args) => FILE_COMMANDS['archive-fetch']!.run(cfg, args, []).then(() => undefined),
};
