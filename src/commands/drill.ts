/** `walship drill`: prove a backup restores, with a throwaway server, and record the result (src/drill/). */
import { ExitCode, WalshipError } from '../errors.js';
import { openArchiveContext } from '../archive/context.js';
import { addSettingOptions, wholeNumberFlag, type CommandDef } from './options.js';
import { TARGET_FLAGS, addTargetOptions, targetOrDefault, timelineFromFlags } from './target.js';

export const drill: CommandDef = {
  name: 'drill',
  define: (cmd) =>
    addSettingOptions(
      addTargetOptions(cmd, '; default: latest')
        .description('prove a backup restores: restore it into a scratch directory, recover it with a throwaway server, check what it reached, record the result')
        .option('--random-target', 'recover to a moment drawn at random from walship ranges (instead of a --target option)')
        .option('--backup <id>', 'drill this backup (default: the newest one that reaches the target)')
        .option('--workdir <dir>', 'make the scratch directory here (default: the system temporary directory)')
        .option('--check-sql <file>', 'SQL statements to run on the recovered server; each must return one row whose first column is true')
        .option('--check-database <name>', 'the database --check-sql runs in', 'postgres')
        .option('--keep', 'leave the recovered cluster running for inspection (no later drill removes it)')
        .option('--timeout <seconds>', 'how long recovery may take', '3600')
        .option('--parallel <n>', 'chunks downloaded and unpacked at once', '2')
        .option('--json', 'print the drill record as JSON (shape in docs/commands.md)')
        .addHelpText(
          'after',
          "\nRuns as the cluster's OS user (PostgreSQL refuses root); server programs from pg_bin, else the usual places.\n" +
            'Exit codes: 0 the drill passed; 13 it failed (each failed check is named; the result is recorded); 9 the target cannot be reached (nothing done);\n' +
            "14 no room for the scratch cluster; 2 bad options, or no server programs of the backup's major; 6 repository; 7 catalog.",
        ),
    ),
  async run(cfg, flags) {
    const named = TARGET_FLAGS.some((k) => typeof flags[k] === 'string');
    if (flags.randomTarget && (named || flags.targetTimeline)) throw new WalshipError('USAGE', '--random-target draws the target and its timeline: give no other target option');
    const ctx = await openArchiveContext(cfg);
    const { runDrill } = await import('../drill/drill.js');
    const { renderDrill } = await import('../drill/render.js');
    const report = await runDrill(ctx, cfg, {
      target: flags.randomTarget ? 'random' : targetOrDefault(flags, { type: 'latest' }),
      timeline: timelineFromFlags(flags),
      inclusive: !flags.exclusive,
      backup: typeof flags.backup === 'string' ? flags.backup : undefined,
      workdir: typeof flags.workdir === 'string' ? flags.workdir : undefined,
      checkSql: typeof flags.checkSql === 'string' ? { path: flags.checkSql, database: String(flags.checkDatabase) } : undefined,
      keep: !!flags.keep,
      timeoutMs: wholeNumberFlag('timeout', flags.timeout, 1) * 1000,
      parallel: wholeNumberFlag('parallel', flags.parallel, 1),
      progress: !flags.json && process.stderr.isTTY === true,
    });
    process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : renderDrill(report));
    return report.verdict === 'passed' ? ExitCode.OK : ExitCode.DRILL;
  },
};
