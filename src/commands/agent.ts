/**
 * `walship agent --pgdata DIR`: the long-lived process that answers a data directory's
 * archive-push and archive-fetch calls for the client (src/agent/agent.ts). Started on demand by
 * the first call that finds none, or by a service manager (examples/walship-agent.service).
 */
import { SETTINGS, flagName } from '../config.js';
import { addSettingOptions, wholeNumberFlag, type CommandDef } from './options.js';

export const agent: CommandDef = {
  name: 'agent',
  define: (cmd) =>
    addSettingOptions(
      cmd
        .description("answer a data directory's archive-push and archive-fetch calls from one long-lived process (started on demand by the first call)")
        .requiredOption('--pgdata <dir>', 'the data directory whose calls it answers')
        .option('--idle-exit <seconds>', 'exit after this long without a call (0: never, for a service manager)', '120')
        .addHelpText('after', '\nIt answers only calls with its own setting flags, environment and config file; others run in node as without it.'),
    ),
  async run(cfg, flags) {
    // Its identity: the setting flags as given, in the form a call's are compared in.
    const flagArgs: string[] = [];
    if (typeof flags.config === 'string') flagArgs.push(`--config=${flags.config}`);
    for (const def of SETTINGS) {
      const v = flags[(def.key as string).replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())];
      if (typeof v === 'string') flagArgs.push(`--${flagName(def.key)}=${v}`);
    }
    const { runAgent } = await import('../agent/agent.js');
    await runAgent({ pgdata: String(flags.pgdata), flagArgs, idleExitMs: wholeNumberFlag('idle-exit', flags.idleExit, 0) * 1000 }, cfg);
  },
};
