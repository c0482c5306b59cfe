/** `walship backup` and `walship backups`: take a full base backup into the repository; list the backups the catalog knows. */
import { openArchiveContext } from '../archive/context.js';
import { addSettingOptions, addSyncOption, staleNote, syncFirst, wholeNumberFlag, type CommandDef } from './options.js';

export const backup: CommandDef = {
  name: 'backup',
  define: (cmd) =>
    addSettingOptions(
      cmd
        .description('take a full base backup of the running cluster into the repository')
        .option('--label <text>', 'backup label (default: walship <id>)')
        .option('--pgdata <dir>', "the data directory as this host sees it (default: the server's data_directory)")
        .option('--archive-timeout <seconds>', 'how long to wait for the WAL that makes the backup consistent', '600')
        .option('--parallel <n>', 'chunks read, compressed and uploaded at once', '2')
        .option('--spread-checkpoint', 'let the starting checkpoint spread out (default: an immediate checkpoint)')
        .option('--json', 'print a JSON summary at the end'),
    ),
  async run(cfg, flags) {
    const ctx = await openArchiveContext(cfg);
    const { takeBackup } = await import('../backup/take.js');
    const summary = await takeBackup(ctx, cfg, {
      label: typeof flags.label === 'string' ? flags.label : undefined,
      pgdata: typeof flags.pgdata === 'string' ? flags.pgdata : undefined,
      archiveTimeoutMs: wholeNumberFlag('archive-timeout', flags.archiveTimeout, 1) * 1000,
      parallel: wholeNumberFlag('parallel', flags.parallel, 1),
      fast: !flags.spreadCheckpoint,
      progress: !flags.json && process.stderr.isTTY === true,
    });
    if (flags.json) {
      const { backupLabel: _l, tablespaceMap: _t, chunks: _c, ...brief } = summary;
      process.stdout.write(JSON.stringify(brief, null, 2) + '\n');
    } else {
      process.stdout.write(
        `backup ${summary.id} complete: ${summary.files} files, ${(summary.rawBytes / 1048576).toFixed(1)} MiB read, ` +
          `${(summary.storedBytes / 1048576).toFixed(1)} MiB stored in ${(summary.durationMs / 1000).toFixed(1)} s; ` +
          `consistent at ${summary.stopLsn} (${summary.stopTime})\n`,
      );
    }
  },
};

export const backups: CommandDef = {
  name: 'backups',
  define: (cmd) =>
    addSettingOptions(addSyncOption(cmd.description("list base backups: walship's own and those known from backup history files").option('--json', 'print a JSON array (shape in docs/commands.md)'))),
  async run(cfg, flags) {
    const ctx = await openArchiveContext(cfg);
    const stale = await syncFirst(ctx, flags);
    const { Catalog } = await import('../catalog/catalog.js');
    const { listBackups, renderBackups } = await import('../backup/list.js');
    const rows = Catalog.use(ctx.catalogPath, ctx.repoUrl, listBackups);
    process.stdout.write(flags.json ? JSON.stringify(rows, null, 2) + '\n' : staleNote(stale) + renderBackups(rows));
  },
};
