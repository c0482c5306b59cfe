/** `walship init`: create the repository (and bind it to a cluster, with --pgdata) and the catalog (archive/init.ts). */
import { openArchiveContext } from '../archive/context.js';
import { addSettingOptions, type CommandDef } from './options.js';

export const init: CommandDef = {
  name: 'init',
  define: (cmd) =>
    addSettingOptions(
      cmd
        .description('create the repository (and its identity, with --pgdata) and the catalog')
        .option('--pgdata <dir>', "bind the repository to this cluster now (reads a segment's header in DIR/pg_wal)"),
    ),
  async run(cfg, flags) {
    const ctx = await openArchiveContext(cfg);
    const { initRepository } = await import('../archive/init.js');
    process.stdout.write(`${await initRepository(ctx, typeof flags.pgdata === 'string' ? flags.pgdata : undefined)}\n`);
  },
};
