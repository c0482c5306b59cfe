/** `walship check`: prove, against the running primary, that archiving into this repository works end to end (src/check/). */
import { openArchiveContext } from '../archive/context.js';
import { addSettingOptions, wholeNumberFlag, type CommandDef } from './options.js';

export const check: CommandDef = {
  name: 'check',
  define: (cmd) =>
    addSettingOptions(
      cmd
        .description('prove archiving works end to end against the running server: a WAL switch archived here, indexed and fetched back')
        .option('--timeout <seconds>', 'how long to wait for the switched segment to be archived', '60')
        .option('--json', 'print a JSON summary')
        .addHelpText('after', '\nConnects like walship backup (pg_host, pg_port, pg_user, pg_database or PG*). Exit codes: 0 it works; 12 it does not (the reason is printed); 2 bad options or no connection; 6 repository; 7 catalog.'),
    ),
  async run(cfg, flags) {
    const ctx = await openArchiveContext(cfg);
    const { runCheck } = await import('../check/check.js');
    const r = await runCheck(ctx, cfg, wholeNumberFlag('timeout', flags.timeout, 1) * 1000);
    process.stdout.write(
      flags.json
        ? JSON.stringify(r, null, 2) + '\n'
        : `check ok: ${r.segment} archived into ${ctx.repoUrl} in ${r.archivedSeconds.toFixed(1)} s, indexed, and fetched back (${r.fetchedBytes} bytes, verified)\n`,
    );
  },
};
