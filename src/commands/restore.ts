/**
 * `walship restore`: plan (refusing an unreachable target before touching anything), restore the
 * chosen walship backup into --pgdata, and write the recovery settings so that starting the
 * server performs the point-in-time recovery; then prove the restore_command it wrote works.
 */
import { resolve } from 'node:path';
import type { Config } from '../config.js';
import { WalshipError } from '../errors.js';
import type { StorageDriver } from '../storage/driver.js';
import type { Plan } from '../recovery/plan.js';
import type { RestoreResult } from '../recovery/restore.js';
import type { RestoreCheck } from '../recovery/restore-check.js';
import { shellQuote } from '../recovery/restore-plan.js';
import { openArchiveContext } from '../archive/context.js';
import { addSettingOptions, addSyncOption, staleNote, syncFirst, wholeNumberFlag, type CommandDef } from './options.js';
import { addTargetOptions, targetOrDefault, timelineFromFlags } from './target.js';

type Flags = Record<string, unknown>;
type TargetFlags = Record<string, string | boolean | undefined>;

function tablespaceRemap(v: unknown): Map<string, string> {
  const out = new Map<string, string>();
  const list: string[] = Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : [];
  for (const item of list) {
    const m = /^(\d+)=(.+)$/.exec(item);
    if (!m) throw new WalshipError('USAGE', `--tablespace takes OID=DIR (the OIDs are in the backup's manifest), not "${item}"`);
    out.set(m[1]!, resolve(m[2]!));
  }
  return out;
}

export interface RestoreOutcome {
  plan: Plan;
  result: RestoreResult;
  /** restore_command, run once for the first segment recovery needs (restore-check.ts). */
  check: RestoreCheck;
}

export async function runRestore(
  ctx: { storage: StorageDriver; repoUrl: string; catalogPath: string },
  cfg: Config,
  flags: Flags,
): Promise<RestoreOutcome> {
  if (typeof flags.pgdata !== 'string' || flags.pgdata === '') {
    throw new WalshipError('USAGE', 'give the data directory to restore into: --pgdata DIR');
  }
  const target = targetOrDefault(flags as TargetFlags, { type: 'latest' });
  const timeline = timelineFromFlags(flags as TargetFlags);
  const parallel = wholeNumberFlag('parallel', flags.parallel ?? '2', 1);
  const remap = tablespaceRemap(flags.tablespace);

  const { Catalog } = await import('../catalog/catalog.js');
  const { planRecovery } = await import('../recovery/plan.js');
  const { refusalLine } = await import('../recovery/plan-render.js');
  const { restorableInput, restoreCommandFor } = await import('../recovery/restore-plan.js');
  const { restoreBackup } = await import('../recovery/restore.js');
  const { checkRestoreCommand } = await import('../recovery/restore-check.js');
  const restoreCommand = restoreCommandFor(cfg, ctx.repoUrl);
  const plan = Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) =>
    planRecovery(restorableInput(cat, typeof flags.backup === 'string' ? flags.backup : undefined), target, {
      restoreCommand,
      timeline,
      inclusive: !flags.exclusive,
    }),
  );
  if (!plan.reachable) throw new WalshipError('TARGET_UNREACHABLE', refusalLine(plan));

  const result = await restoreBackup(ctx.storage, plan.backup.name, {
    pgdata: flags.pgdata,
    force: !!flags.force,
    tablespaceRemap: remap,
    standby: !!flags.standby,
    recoveryConf: plan.conf,
    parallel,
    progress: !flags.json && process.stderr.isTTY === true,
  });
  const first = plan.wal.segments[0]?.first;
  if (!first) throw new WalshipError('INTERNAL', `the plan for backup ${plan.backup.name} names no WAL segment`);
  // Long enough for a slow S3 store to answer with every retry.
  const timeoutMs = (cfg.s3_max_retries + 2) * cfg.s3_request_timeout + 60_000;
  const check = await checkRestoreCommand(result.pgdata, restoreCommand, first, timeoutMs);
  return { plan, result, check };
}

export function renderRestore({ plan, result, check }: RestoreOutcome, standby: boolean): string {
  const lines = [
    `restored backup ${result.backup.id} ("${result.backup.label}", consistent at ${result.backup.stopLsn}, ${result.backup.stopTime})`,
    `  into ${result.pgdata}: ${result.files} files, ${(result.bytes / 1048576).toFixed(1)} MiB, every piece checked against the manifest`,
    ...result.tablespaces.map((t) => `  tablespace ${t.oid} at ${t.location}`),
    `  recovery: ${plan.stop.description}, on timeline ${plan.timeline}`,
    `  settings written to ${result.pgdata}/postgresql.auto.conf:`,
    ...plan.conf.map((l) => `    ${l}`),
    `  ${standby ? 'standby.signal' : 'recovery.signal'} written`,
    `  restore_command checked: it fetched ${check.file} from the data directory as uid ${check.uid}, as the server will (${(check.ms / 1000).toFixed(1)} s)`,
    '',
  ];
  if (process.getuid?.() === 0) lines.push(`The files belong to root: first  chown -R postgres: ${shellQuote(result.pgdata)}  (or the server's OS user)`);
  lines.push(`Start the server:  pg_ctl -D ${shellQuote(result.pgdata)} start`);
  return lines.join('\n') + '\n';
}

export const restore: CommandDef = {
  name: 'restore',
  define: (cmd) =>
    addSettingOptions(
      addSyncOption(addTargetOptions(cmd, '; default: latest'))
        .description('restore a walship backup into a data directory, ready for point-in-time recovery')
        .requiredOption('--pgdata <dir>', 'the data directory to create (must be empty or absent)')
        .option('--backup <id>', 'restore this backup (default: the newest one that reaches the target)')
        .option('--standby', 'write standby.signal instead of recovery.signal')
        .option('--force', 'empty a non-empty --pgdata first (never one with a running server)')
        .addOption(
          cmd
            .createOption('--tablespace <oid=dir>', 'restore a tablespace to another directory (repeatable)')
            .argParser((v: string, prev: string[]) => [...prev, v])
            .default([] as string[], 'none'),
        )
        .option('--parallel <n>', 'chunks downloaded and unpacked at once', '2')
        .option('--json', 'print a JSON summary'),
    ),
  async run(cfg, flags) {
    const ctx = await openArchiveContext(cfg);
    const stale = await syncFirst(ctx, flags);
    // --tablespace collects an array: the flags of this command are wider than the others'.
    const out = await runRestore(ctx, cfg, flags as Record<string, unknown>);
    if (flags.json) {
      const { backupLabel: _l, tablespaceMap: _t, chunks: _c, ...backup } = out.result.backup;
      const doc = { pgdata: out.result.pgdata, files: out.result.files, bytes: out.result.bytes, tablespaces: out.result.tablespaces, backup, plan: out.plan, restoreCommandCheck: out.check };
      process.stdout.write(JSON.stringify(stale ? { ...doc, stale } : doc, null, 2) + '\n');
    } else {
      process.stdout.write(staleNote(stale) + renderRestore(out, !!flags.standby));
    }
  },
};
