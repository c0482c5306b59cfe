/**
 * The `walship` command line. Each subcommand's module is imported only when it runs, and
 * archive-push / archive-fetch (run by PostgreSQL once per file) skip commander altogether:
 * `fastPath` parses their few arguments directly, saving its load time on every call.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { SETTINGS, flagName, envName, resolveConfig, unknownVariables, type Config } from '../config.js';
import { ExitCode, WalshipError, asWalshipError, effectiveFetchPolicy, exitCodeFor } from '../errors.js';
import { configureLog, logger } from '../log.js';
import { VERSION } from '../version.js';
import { EXIT_CODES_HELP, FETCH_EXIT_HELP } from './help.js';
import { wholeNumberFlag } from './flags.js';
import { openArchiveContext } from '../archive/context.js';

type Flags = Record<string, string | boolean | undefined>;

function addSettingOptions(cmd: Command): Command {
  cmd.addOption(cmd.createOption('--config <path>', `config file (env WALSHIP_CONFIG; default /etc/walship/walship.conf)`));
  for (const def of SETTINGS) {
    const key = def.key as string;
    if (key.startsWith('s3_') && cmd.name() === 'init') continue;
    const opt = cmd.createOption(`--${flagName(key)} <value>`, `${def.description} (env ${envName(key)})`);
    if ('values' in def && def.values) opt.choices(def.values as readonly string[]);
    cmd.addOption(opt);
  }
  return cmd;
}

/** The recovery target options `plan` and `restore` share. */
function addTargetOptions(cmd: Command, defaultNote: string): Command {
  return cmd
    .option('--target-time <time>', 'recover to this time: ISO 8601 with a UTC offset, e.g. 2026-11-24T11:08:25.5+01:00')
    .option('--target-name <name>', 'recover to this restore point (pg_create_restore_point)')
    .option('--target-lsn <lsn>', 'recover to this WAL location, e.g. 0/3000028')
    .option('--target-xid <xid>', 'recover to the commit or abort of this transaction')
    .option('--target <which>', `immediate (a backup's consistency point) or latest (the end of the archive)${defaultNote}`)
    .option('--target-timeline <n>', 'recover along this timeline (default: the newest one that reaches the target)')
    .option('--exclusive', 'stop just before the target (recovery_target_inclusive = off)');
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

/** The `--no-sync` option of the commands that answer from the catalog. */
function addSyncOption(cmd: Command): Command {
  return cmd.option('--no-sync', 'answer from the catalog as it is, without bringing it up to date with the repository first');
}

/**
 * Brings the catalog up to date before a command answers from it (sync/sync.ts): null when it
 * is, else how stale the answer may be (also logged).
 */
async function syncFirst(ctx: Awaited<ReturnType<typeof openArchiveContext>>, flags: Flags): Promise<import('../sync/sync.js').Staleness | null> {
  const { syncForReading } = await import('../sync/sync.js');
  return syncForReading(ctx, flags.sync === false);
}

/** The line a text answer starts with when the catalog could not be brought up to date. */
function staleNote(stale: import('../sync/sync.js').Staleness | null): string {
  if (!stale) return '';
  return `note: this answer is from the catalog as of its last sync with the repository (${stale.lastSyncedAt ?? 'never'}): ${stale.reason}\n\n`;
}

let currentCommand = '';
let fetchPolicy: Config['fetch_on_error'] = 'auto';

/** Whether PostgreSQL runs this call in standby mode: standby.signal in its working directory, the data directory. */
function inStandbyMode(): boolean {
  try {
    return existsSync(join(process.cwd(), 'standby.signal'));
  } catch {
    return false;
  }
}

/** False on the per-file commands, which never print to stdout (creating the stream costs ~2 ms). */
let usesStdout = true;

async function finish(code: number): Promise<never> {
  if (usesStdout) await new Promise<void>((r) => (process.stdout.writableNeedDrain ? process.stdout.once('drain', () => r()) : r()));
  process.exit(code);
}

function fail(err: unknown): Promise<never> {
  const we = asWalshipError(err);
  const standby = currentCommand === 'archive-fetch' && fetchPolicy === 'auto' && inStandbyMode();
  const code = exitCodeFor(we, currentCommand, effectiveFetchPolicy(fetchPolicy, standby));
  if (we.code === 'NOT_IN_ARCHIVE') {
    logger.debug(we.message, { code: we.code });
  } else {
    // A standby asks again: say so every time, loudly, since it goes on as if nothing happened.
    logger.error(we.message, { code: we.code, ...(standby && { then: 'standby mode: exit 3, the standby streams on and asks the archive again (fetch_on_error = auto)' }) });
    if (we.code === 'INTERNAL' && process.env.WALSHIP_DEBUG) process.stderr.write(`${(we.cause as Error)?.stack ?? ''}\n`);
  }
  return finish(code);
}

/** Resolves the settings and configures logging; warns of WALSHIP_* variables that are no setting. */
function settingsFor(name: string, flags: Flags): Config {
  const cfg = resolveConfig(settingsFromFlags(flags));
  fetchPolicy = cfg.fetch_on_error;
  configureLog({ level: cfg.log_level, format: cfg.log_format, command: name });
  for (const v of unknownVariables(process.env)) {
    logger.warn(`environment variable ${v.name} is not a walship setting and is ignored${v.resembles ? ` (did you mean ${v.resembles}?)` : ''}`);
  }
  return cfg;
}

/** Wraps a subcommand: resolves settings, configures logging, maps errors to exit codes. */
function action(name: string, fn: (cfg: Config, flags: Flags, args: string[]) => Promise<number | void>) {
  return async (...argv: unknown[]) => {
    currentCommand = name;
    const cmd = argv[argv.length - 1] as Command;
    const flags = cmd.opts() as Flags;
    const args = argv.slice(0, -2) as string[];
    try {
      const cfg = settingsFor(name, flags);
      const code = await fn(cfg, flags, args);
      await finish(code ?? ExitCode.OK);
    } catch (err) {
      await fail(err);
    }
  };
}

export async function buildProgram(): Promise<Command> {
  const { Command } = await import('commander');
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
    // fastPath() runs it; commander only prints its help. Kept on one code path regardless.
    action('archive-push', (cfg, _flags, args) => FAST_COMMANDS['archive-push']!.run(cfg, args, []).then(() => undefined)),
  );

  addSettingOptions(
    program
      .command('archive-fetch')
      .description("deliver one archived WAL file (restore_command = 'walship archive-fetch %f %p')")
      .argument('<name>', 'the WAL file name PostgreSQL asks for (%f)')
      .argument('<dest>', 'where to write it, relative to the data directory (%p)')
      .addHelpText('after', `\n${FETCH_EXIT_HELP}`),
  ).action(
    action('archive-fetch', (cfg, _flags, args) => FAST_COMMANDS['archive-fetch']!.run(cfg, args, []).then(() => undefined)),
  );

  addSettingOptions(
    addSyncOption(
      program
        .command('info')
        .description('show the repository identity, archived WAL per timeline with gaps, history files, backups')
        .option('--json', 'print a JSON document (shape in docs/commands.md)'),
    ),
  ).action(
    action('info', async (cfg, flags) => {
      const ctx = await openArchiveContext(cfg);
      const stale = await syncFirst(ctx, flags);
      const { Catalog } = await import('../catalog/catalog.js');
      const { buildInfo, renderInfo } = await import('../catalog/info.js');
      const report = Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) => buildInfo(cat, ctx.repoUrl));
      process.stdout.write(flags.json ? JSON.stringify(stale ? { ...report, stale } : report, null, 2) + '\n' : staleNote(stale) + renderInfo(report));
    }),
  );

  addSettingOptions(
    program
      .command('backup')
      .description('take a full base backup of the running cluster into the repository')
      .option('--label <text>', 'backup label (default: walship <id>)')
      .option('--pgdata <dir>', "the data directory as this host sees it (default: the server's data_directory)")
      .option('--archive-timeout <seconds>', 'how long to wait for the WAL that makes the backup consistent', '600')
      .option('--parallel <n>', 'chunks read, compressed and uploaded at once', '2')
      .option('--spread-checkpoint', 'let the starting checkpoint spread out (default: an immediate checkpoint)')
      .option('--json', 'print a JSON summary at the end'),
  ).action(
    action('backup', async (cfg, flags) => {
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
    }),
  );

  addSettingOptions(
    addSyncOption(
      program
        .command('backups')
        .description('list base backups: walship\'s own and those known from backup history files')
        .option('--json', 'print a JSON array (shape in docs/commands.md)'),
    ),
  ).action(
    action('backups', async (cfg, flags) => {
      const ctx = await openArchiveContext(cfg);
      const stale = await syncFirst(ctx, flags);
      const { Catalog } = await import('../catalog/catalog.js');
      const { listBackups, renderBackups } = await import('../backup/list.js');
      const rows = Catalog.use(ctx.catalogPath, ctx.repoUrl, listBackups);
      process.stdout.write(flags.json ? JSON.stringify(rows, null, 2) + '\n' : staleNote(stale) + renderBackups(rows));
    }),
  );

  addSettingOptions(
    addSyncOption(
      program
        .command('ranges')
        .description('show, per timeline, the windows of time and LSN the cluster can be recovered to')
        .option('--json', 'print a JSON document (shape in docs/commands.md)'),
    ),
  ).action(
    action('ranges', async (cfg, flags) => {
      const ctx = await openArchiveContext(cfg);
      const stale = await syncFirst(ctx, flags);
      const { runRanges } = await import('../recovery/cli.js');
      process.stdout.write((flags.json ? '' : staleNote(stale)) + runRanges(ctx, flags, stale));
    }),
  );

  addSettingOptions(
    addSyncOption(addTargetOptions(program.command('plan'), ''))
      .description('plan a point-in-time recovery: the base backup, the WAL and the postgresql.conf settings that reach a target')
      .option('--restore-command <cmd>', "restore_command to write (default: walship archive-fetch %f %p --repo <this repository>)")
      .option('--json', 'print a JSON document (shape in docs/commands.md)')
      .addHelpText('after', '\nExit codes: 0 planned; 2 bad options; 7 catalog unreadable; 9 the target cannot be reached (the reason and the nearest reachable targets are printed).'),
  ).action(
    action('plan', async (cfg, flags) => {
      const ctx = await openArchiveContext(cfg);
      const stale = await syncFirst(ctx, flags);
      const { runPlan } = await import('../recovery/cli.js');
      if (!flags.json) process.stdout.write(staleNote(stale));
      runPlan(ctx, flags, (s) => process.stdout.write(s), stale);
    }),
  );

  addSettingOptions(
    addSyncOption(addTargetOptions(program.command('restore'), '; default: latest'))
      .description('restore a walship backup into a data directory, ready for point-in-time recovery')
      .requiredOption('--pgdata <dir>', 'the data directory to create (must be empty or absent)')
      .option('--backup <id>', 'restore this backup (default: the newest one that reaches the target)')
      .option('--standby', 'write standby.signal instead of recovery.signal')
      .option('--force', 'empty a non-empty --pgdata first (never one with a running server)')
      .addOption(
        program
          .createOption('--tablespace <oid=dir>', 'restore a tablespace to another directory (repeatable)')
          .argParser((v: string, prev: string[]) => [...prev, v])
          .default([] as string[], 'none'),
      )
      .option('--parallel <n>', 'chunks downloaded and unpacked at once', '2')
      .option('--json', 'print a JSON summary'),
  ).action(
    action('restore', async (cfg, flags) => {
      const ctx = await openArchiveContext(cfg);
      const stale = await syncFirst(ctx, flags);
      const { runRestore, renderRestore } = await import('../recovery/restore-command.js');
      // --tablespace collects an array: the flags of this command are wider than the others'.
      const out = await runRestore(ctx, cfg, flags as Record<string, unknown>);
      if (flags.json) {
        const { backupLabel: _l, tablespaceMap: _t, chunks: _c, ...backup } = out.result.backup;
        const doc = { pgdata: out.result.pgdata, files: out.result.files, bytes: out.result.bytes, tablespaces: out.result.tablespaces, backup, plan: out.plan, restoreCommandCheck: out.check };
        process.stdout.write(JSON.stringify(stale ? { ...doc, stale } : doc, null, 2) + '\n');
      } else {
        process.stdout.write(staleNote(stale) + renderRestore(out, !!flags.standby));
      }
    }),
  );

  const catalog = program.command('catalog').description('the local catalog, a cache of the repository: sync it, or rebuild it from the repository alone');
  for (const [sub, description, fn] of [
    ['sync', 'bring the catalog up to date with the repository (reads only what can be new)', 'syncCatalog'],
    ['rebuild', 'make the catalog anew from the repository alone (safe while pushes go on; killed, it leaves the old one)', 'rebuildCatalog'],
  ] as const) {
    addSettingOptions(
      catalog
        .command(sub)
        .description(description)
        .option('--rescan', 'download and scan the segments whose object carries no scan (archived by older walship)')
        .option('--json', 'print what was read as JSON'),
    ).action(
      action(`catalog ${sub}`, async (cfg, flags) => {
        const ctx = await openArchiveContext(cfg);
        const out = await (await import('../sync/sync.js'))[fn](ctx, { rescan: !!flags.rescan });
        process.stdout.write(flags.json ? JSON.stringify(out, null, 2) + '\n' : renderSync(ctx.catalogPath, out));
      }),
    );
  }

  addSettingOptions(
    program
      .command('expire')
      .description('remove the backups and WAL a retention policy lets go, keeping every window it promises exactly as it is')
      .option('--dry-run', 'list what would go and the windows that remain, and remove nothing')
      .option('--json', 'print a JSON document (shape in docs/commands.md)')
      .addHelpText(
        'after',
        '\nPolicy (config file or flags): retain_full = N and/or retain_window = 14d; retain_wal_before_oldest; retain_incomplete.\n' +
          'Exit codes: 0 done (or planned, with --dry-run); 2 no policy or bad options; 6 repository unreadable; 7 catalog; 11 another expire holds the lock.',
      ),
  ).action(
    action('expire', async (cfg, flags) => {
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
    }),
  );

  addSettingOptions(
    program
      .command('verify')
      .description('read the repository back: every archived object, every backup against its manifest, the continuity of the WAL, and leftovers')
      .option('--full', 'read everything again (default: only what no earlier verify found sound)')
      .option('--parallel <n>', 'objects read at once (memory: about that many objects)', '4')
      .option('--json', 'print a JSON document (shape in docs/commands.md)')
      .addHelpText('after', '\nExit codes: 0 nothing damaged or missing (leftovers are listed); 8 damaged or missing objects, diverged or missing WAL (each named); 6 repository unreadable; 7 catalog.'),
  ).action(
    action('verify', async (cfg, flags) => {
      const ctx = await openArchiveContext(cfg);
      const { runVerify } = await import('../verify/verify.js');
      const { renderVerify } = await import('../verify/render.js');
      const report = await runVerify(ctx, { full: !!flags.full, parallel: wholeNumberFlag('parallel', flags.parallel, 1), progress: !flags.json && process.stderr.isTTY === true, cfg });
      process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : renderVerify(report));
      return report.failures > 0 ? ExitCode.CORRUPT : ExitCode.OK;
    }),
  );

  addSettingOptions(
    addSyncOption(
      program
        .command('status')
        .description('one look at health: archiving, backups, recoverable windows, verify, repository size; Nagios exit codes, Prometheus metrics')
        .option('--pgdata <dir>', "also count the .ready segments in this data directory's pg_wal")
        .option('--json', 'print a JSON document (shape in docs/commands.md)')
        .option('--prometheus', 'print Prometheus text-format metrics')
        .option('--prometheus-file <path>', "also write the metrics to this file, atomically (node_exporter's textfile collector)")
        .addHelpText('after', '\nExit codes (Nagios): 0 ok; 1 warning; 2 critical; 3 unknown (walship status could not tell: the error says why).'),
    ),
  ).action(
    action('status', async (cfg, flags) => {
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
    }),
  );

  addSettingOptions(
    program
      .command('check')
      .description('prove archiving works end to end against the running server: a WAL switch archived here, indexed and fetched back')
      .option('--timeout <seconds>', 'how long to wait for the switched segment to be archived', '60')
      .option('--json', 'print a JSON summary')
      .addHelpText('after', '\nConnects like walship backup (pg_host, pg_port, pg_user, pg_database or PG*). Exit codes: 0 it works; 12 it does not (the reason is printed); 2 bad options or no connection; 6 repository; 7 catalog.'),
  ).action(
    action('check', async (cfg, flags) => {
      const ctx = await openArchiveContext(cfg);
      const { runCheck } = await import('../check/check.js');
      const r = await runCheck(ctx, cfg, wholeNumberFlag('timeout', flags.timeout, 1) * 1000);
      process.stdout.write(
        flags.json
          ? JSON.stringify(r, null, 2) + '\n'
          : `check ok: ${r.segment} archived into ${ctx.repoUrl} in ${r.archivedSeconds.toFixed(1)} s, indexed, and fetched back (${r.fetchedBytes} bytes, verified)\n`,
      );
    }),
  );

  addSettingOptions(
    addTargetOptions(program.command('drill'), '; default: latest')
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
        '\nRuns as the cluster\'s OS user (PostgreSQL refuses root); server programs from pg_bin, else the usual places.\n' +
          'Exit codes: 0 the drill passed; 13 it failed (each failed check is named; the result is recorded); 9 the target cannot be reached (nothing done);\n' +
          '14 no room for the scratch cluster; 2 bad options, or no server programs of the backup\'s major; 6 repository; 7 catalog.',
      ),
  ).action(
    action('drill', async (cfg, flags) => {
      const ctx = await openArchiveContext(cfg);
      const { targetFromFlags, timelineFromFlags } = await import('../recovery/cli.js');
      const { runDrill } = await import('../drill/drill.js');
      const { renderDrill } = await import('../drill/render.js');
      const named = ['targetTime', 'targetName', 'targetLsn', 'targetXid', 'target'].some((k) => typeof flags[k] === 'string');
      if (flags.randomTarget && (named || flags.targetTimeline)) throw new WalshipError('USAGE', '--random-target draws the target and its timeline: give no other target option');
      const report = await runDrill(ctx, cfg, {
        target: flags.randomTarget ? 'random' : named ? targetFromFlags(flags) : { type: 'latest' },
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
    }),
  );

  addSettingOptions(
    program
      .command('init')
      .description('create the repository (and its identity, with --pgdata) and the catalog')
      .option('--pgdata <dir>', "bind the repository to this cluster now (reads a segment's header in DIR/pg_wal)"),
  ).action(
    action('init', async (cfg, flags) => {
      const ctx = await openArchiveContext(cfg);
      const { initRepository } = await import('../archive/init.js');
      const res = await initRepository(ctx, typeof flags.pgdata === 'string' ? flags.pgdata : undefined);
      process.stdout.write(`${res}\n`);
    }),
  );

  return program;
}

function renderSync(catalogPath: string, o: import('../sync/sync.js').SyncOutcome): string {
  const lines = [
    `catalog ${catalogPath} ${o.mode === 'rebuild' ? 'rebuilt from' : 'synced with'} the repository: ${o.files} file(s) and ${o.backups} backup(s) read, ` +
      `${o.requests} request(s), ${(o.ms / 1000).toFixed(1)} s${o.blocks > 0 ? `; ${o.blocks} index block(s) read` : ''}`,
  ];
  if (o.rescanned > 0) lines.push(`  ${o.rescanned} segment(s) downloaded and scanned`);
  if (o.unscanned > 0) lines.push(`  ${o.unscanned} segment(s) carry no scan (archived by older walship): indexed without their records; --rescan reads them`);
  for (const d of o.damagedBlocks) lines.push(`  damaged index block, read around: ${d}`);
  for (const d of o.damagedObjects) lines.push(`  DAMAGED archived object, left out of the catalog: ${d}`);
  return lines.join('\n') + '\n';
}

/**
 * The commands PostgreSQL runs per file, with their positional arguments (and `flagArgs`, the
 * setting flags as given, for the prefetcher archive-fetch starts). The repository is opened only
 * when needed: a push answered by read-ahead or a fetch answered from the prefetch spool never
 * loads a storage driver. archive-prefetch and archive-push-ahead are internal: archive-fetch and
 * archive-push start them.
 */
const FAST_COMMANDS: Record<string, { positionals: number; run: (cfg: Config, args: string[], flagArgs: string[]) => Promise<unknown> }> = {
  'archive-push': {
    positionals: 1,
    run: async (cfg, [path], flagArgs) =>
      (await import('../archive/readahead.js'))
        .archivePushWithReadahead(cfg, path!, () => openArchiveContext(cfg), flagArgs)
        // push_queue_max: a push the repository cannot take, while pg_wal fills (off by default).
        .catch(async (err: unknown) => (await import('../archive/queue-guard.js')).dropIfQueueFull(cfg, path!, err)),
  },
  'archive-push-ahead': {
    positionals: 1,
    run: async (cfg, [walDir]) => (await import('../archive/pusher.js')).runPusherCommand(cfg, walDir!, () => openArchiveContext(cfg)),
  },
  'archive-fetch': {
    positionals: 2,
    run: async (cfg, [name, dest], flagArgs) =>
      (await import('../archive/prefetch.js')).archiveFetchWithPrefetch(cfg, name!, dest!, () => openArchiveContext(cfg), flagArgs),
  },
  'archive-prefetch': {
    positionals: 1,
    run: async (cfg, [name]) => (await import('../archive/prefetch.js')).runPrefetcher(cfg, name!, () => openArchiveContext(cfg)),
  },
};

/**
 * Parses `archive-push` / `archive-fetch` arguments without commander. Returns false when the
 * line asks for help, so commander prints it. Flags: every setting's `--flag value` or
 * `--flag=value`, and `--config`.
 */
async function fastPath(argv: string[]): Promise<boolean> {
  const name = argv[2]!;
  const spec = FAST_COMMANDS[name];
  const rest = argv.slice(3);
  if (!spec || rest.some((a) => a === '-h' || a === '--help')) return false;
  currentCommand = name;
  usesStdout = false;
  configureLog({ command: name });
  const flags: Flags = {};
  const positionals: string[] = [];
  const flagArgs: string[] = [];
  const known = new Map<string, string>([['config', 'config']]);
  for (const def of SETTINGS) {
    known.set(flagName(def.key), (def.key as string).replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()));
  }
  try {
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i]!;
      if (a === '--') {
        positionals.push(...rest.slice(i + 1));
        break;
      }
      if (!a.startsWith('--')) {
        positionals.push(a);
        continue;
      }
      const eq = a.indexOf('=');
      const flag = a.slice(2, eq < 0 ? undefined : eq);
      const prop = known.get(flag);
      if (!prop) throw new WalshipError('USAGE', `unknown option '--${flag}' (see walship ${name} --help)`);
      const value = eq < 0 ? rest[++i] : a.slice(eq + 1);
      if (value === undefined) throw new WalshipError('USAGE', `option '--${flag}' needs a value`);
      flags[prop] = value;
      flagArgs.push(`--${flag}=${value}`);
    }
    if (positionals.length !== spec.positionals) {
      throw new WalshipError('USAGE', `${name} takes ${spec.positionals === 1 ? 'one argument' : 'two arguments'}, got ${positionals.length} (see walship ${name} --help)`);
    }
    await spec.run(settingsFor(name, flags), positionals, flagArgs);
  } catch (err) {
    return fail(err);
  }
  return finish(ExitCode.OK);
}

async function main(argv: string[]): Promise<void> {
  if (await fastPath(argv)) return;
  const program = await buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const ce = err as { code?: string; exitCode?: number; message?: string };
    if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
      if (ce.exitCode === 0) return finish(0);
      // A bad command line is a USAGE error, mapped as every error is (errors.ts: `status` answers
      // "unknown"). A malformed restore_command must not look like the end of the archive: it
      // fails as any failure does under fetch_on_error (from the environment or the config file, else auto).
      const usage = new WalshipError('USAGE', ce.message ?? '');
      if (argv[2] !== 'archive-fetch') return finish(exitCodeFor(usage, argv[2] ?? ''));
      let policy: Config['fetch_on_error'] = 'auto';
      try {
        policy = resolveConfig({ flags: {} }).fetch_on_error;
      } catch {
        /* a configuration that does not resolve: the default */
      }
      return finish(exitCodeFor(usage, 'archive-fetch', effectiveFetchPolicy(policy, inStandbyMode())));
    }
    await fail(err);
  }
}

void main(process.argv);
