/** `walship status`: one look at health, in the Nagios convention and as Prometheus metrics (src/status/). */
import { WalshipError } from '../errors.js';
import { openArchiveContext } from '../archive/context.js';
import { addSettingOptions, addSyncOption, type CommandDef } from './options.js';

export const status: CommandDef = {
  name: 'status',
  define: (cmd) =>
    addSettingOptions(
      addSyncOption(
        cmd
          .description('one look at health: archiving, backups, recoverable windows, verify, drills, repository size; Nagios exit codes, Prometheus metrics')
          .option('--pgdata <dir>', "also count the .ready segments in this data directory's pg_wal")
          .option('--json', 'print a JSON document (shape in docs/commands.md)')
          .option('--prometheus', 'print Prometheus text-format metrics')
          .option('--prometheus-file <path>', "also write the metrics to this file, atomically (node_exporter's textfile collector)")
          .addHelpText('after', '\nExit codes (Nagios): 0 ok; 1 warning; 2 critical; 3 unknown (walship status could not tell: the error says why).'),
      ),
    ),
  async run(cfg, flags) {
    const ctx = await openArchiveContext(cfg);
    const { collectStatus } = await import('../status/status.js');
    const { STATE_CODE, evaluate, renderPrometheus, renderStatus } = await import('../status/health.js');
    const facts = await collectStatus(ctx, { pgdata: typeof flags.pgdata === 'string' ? flags.pgdata : undefined, noSync: flags.sync === false });
    const report = evaluate(facts, {
      archiveLagWarn: cfg.status_archive_lag_warn,
      archiveLagCrit: cfg.status_archive_lag_crit,
      backupAgeWarn: cfg.status_backup_age_warn,
      backupAgeCrit: cfg.status_backup_age_crit,
      verifyAgeWarn: cfg.status_verify_age_warn,
      drillAgeWarn: cfg.status_drill_age_warn,
    });
    if (typeof flags.prometheusFile === 'string') {
      const { writeFileAtomic } = await import('../local/atomic-write.js');
      await writeFileAtomic(flags.prometheusFile, renderPrometheus(report), { mode: 0o644 }).catch((err: unknown) => {
        throw new WalshipError('USAGE', `cannot write --prometheus-file ${flags.prometheusFile}: ${(err as Error).message}`);
      });
    }
    process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : flags.prometheus ? renderPrometheus(report) : renderStatus(report));
    return STATE_CODE[report.state];
  },
};
