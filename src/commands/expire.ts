/** `walship expire`: remove what a retention policy lets go, keeping every window it promises exactly as it is (src/expire/). */
import { openArchiveContext } from '../archive/context.js';
import { addSettingOptions, type CommandDef } from './options.js';

export const expire: CommandDef = {
  name: 'expire',
  define: (cmd) =>
    addSettingOptions(
      cmd
        .description('remove the backups and WAL a retention policy lets go, keeping every window it promises exactly as it is')
        .option('--dry-run', 'list what would go and the windows that remain, and remove nothing')
        .option('--json', 'print a JSON document (shape in docs/commands.md)')
        .addHelpText(
          'after',
          '\nPolicy (config file or flags): retain_full = N and/or retain_window = 14d; retain_wal_before_oldest; retain_incomplete.\n' +
            'Exit codes: 0 done (or planned, with --dry-run); 2 no policy or bad options; 6 repository unreadable; 7 catalog; 11 another expire holds the lock.',
        ),
    ),
  async run(cfg, flags) {
    const ctx = await openArchiveContext(cfg);
    const { runExpire } = await import('../expire/expire.js');
    const { renderExpire } = await import('../expire/render.js');
    const report = await runExpire(ctx, {
      dryRun: !!flags.dryRun,
      policy: {
        full: cfg.retain_full ?? null,
        windowSeconds: cfg.retain_window ?? null,
        walBeforeOldest: cfg.retain_wal_before_oldest,
        incompleteSeconds: cfg.retain_incomplete,
      },
    });
    process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : renderExpire(report));
  },
};
