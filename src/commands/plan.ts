/**
 * `walship plan`: the base backup, the WAL and the postgresql.conf settings that reach a target,
 * or why it cannot be reached (exit 9, with the nearest reachable targets).
 */
import { resolve } from 'node:path';
import { WalshipError } from '../errors.js';
import { openArchiveContext } from '../archive/context.js';
import type { Staleness } from '../sync/sync.js';
import { addSettingOptions, addSyncOption, staleNote, syncFirst, type CommandDef, type Flags } from './options.js';
import { addTargetOptions, targetFromFlags, timelineFromFlags } from './target.js';

/** Prints the plan (stdout); an unreachable target throws TARGET_UNREACHABLE after printing the refusal JSON with --json. */
export async function runPlan(ctx: { catalogPath: string; repoUrl: string }, flags: Flags, write: (s: string) => void, stale: Staleness | null = null): Promise<void> {
  const target = targetFromFlags(flags);
  const timeline = timelineFromFlags(flags);
  const { Catalog } = await import('../catalog/catalog.js');
  const { loadPlannerInput } = await import('../recovery/catalog-input.js');
  const { planRecovery } = await import('../recovery/plan.js');
  const { refusalLine, renderPlan } = await import('../recovery/plan-render.js');
  const { defaultRestoreCommand } = await import('../recovery/restore-plan.js');
  const restoreCommand =
    typeof flags.restoreCommand === 'string' ? flags.restoreCommand : defaultRestoreCommand(ctx.repoUrl, typeof flags.config === 'string' ? resolve(flags.config) : undefined);
  const result = Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) => planRecovery(loadPlannerInput(cat), target, { restoreCommand, timeline, inclusive: !flags.exclusive }));
  const json = () => JSON.stringify(stale ? { ...result, stale } : result, null, 2) + '\n';
  if (!result.reachable) {
    if (flags.json) write(json());
    throw new WalshipError('TARGET_UNREACHABLE', refusalLine(result));
  }
  write(flags.json ? json() : renderPlan(result));
}

export const plan: CommandDef = {
  name: 'plan',
  define: (cmd) =>
    addSettingOptions(
      addSyncOption(addTargetOptions(cmd, ''))
        .description('plan a point-in-time recovery: the base backup, the WAL and the postgresql.conf settings that reach a target')
        .option('--restore-command <cmd>', 'restore_command to write (default: walship archive-fetch %f %p --repo <this repository>)')
        .option('--json', 'print a JSON document (shape in docs/commands.md)')
        .addHelpText('after', '\nExit codes: 0 planned; 2 bad options; 7 catalog unreadable; 9 the target cannot be reached (the reason and the nearest reachable targets are printed).'),
    ),
  async run(cfg, flags) {
    const ctx = await openArchiveContext(cfg);
    const stale = await syncFirst(ctx, flags);
    if (!flags.json) process.stdout.write(staleNote(stale));
    await runPlan(ctx, flags, (s) => process.stdout.write(s), stale);
  },
};
