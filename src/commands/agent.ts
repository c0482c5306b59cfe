/**
 * `walship agent --pgdata DIR`: the long-lived process that answers a data directory's
 * archive-push and archive-fetch calls for the client (src/agent/agent.ts). Started on demand by
 * the first call that finds none, or by a service manager (examples/walship-agent.service).
 */
import { flagName } from '../config.js';
import { settingsFromFlags } from './file-call.js';
import { addSettingOptions, wholeNumberFlag, type CommandDef } from './options.js';

export const agent: CommandDef = {
  name: 'agent',
  define: (cmd) =>
    addSettingOptions(
      cmd
        .description("answer a data directory's archive-push and archive-fetch calls from one long-lived process (started on demand by the first call)")
        .requiredOption('--pgdata <dir>', 'the data directory whose calls it answers')
        .option('--idle-exit <seconds>', 'exit after this long without a call (0: never, for a service manager)', '120')
        .option('--push-ahead <wal-dir>', 'run the background pusher for this pg_wal at once (what the call that starts the agent hands it)')
        .addHelpText('after', '\nIt answers only calls with its own setting flags, environment and config file; others run in node as without it.'),
    ),
  async run(cfg, flags) {
    // Its identity: the setting flags as given, in the form a call's are compared in.
    const given = settingsFromFlags(flags);
    const flagArgs = Object.entries(given.flags).map(([key, v]) => `--${flagName(key)}=${v}`);
    if (given.configPath !== undefined) flagArgs.push(`--config=${given.configPath}`);
    const { runAgent } = await import('../agent/agent.js');
    const helpers = { pushAhead: flags.pushAhead ? String(flags.pushAhead) : undefined };
    await runAgent({ pgdata: String(flags.pgdata), flagArgs, idleExitMs: wholeNumberFlag('idle-exit', flags.idleExit, 0) * 1000, helpers }, cfg);
  },
};
