/**
 * `walship ranges`: the windows of time and LSN each timeline can be recovered to, from the
 * catalog once it is brought up to date with the repository (or with a note of how stale it is).
 */
import { openArchiveContext } from '../archive/context.js';
import type { Staleness } from '../sync/sync.js';
import { addSettingOptions, addSyncOption, staleNote, syncFirst, type CommandDef, type Flags } from './options.js';

export async function runRanges(ctx: { catalogPath: string; repoUrl: string }, flags: Flags, stale: Staleness | null = null, nowMs = Date.now()): Promise<string> {
  const { Catalog } = await import('../catalog/catalog.js');
  const { loadPlannerInput } = await import('../recovery/catalog-input.js');
  const { computeRanges, renderRanges } = await import('../recovery/ranges.js');
  const { msToMicros } = await import('../time.js');
  return Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) => {
    const report = computeRanges(loadPlannerInput(cat), msToMicros(nowMs));
    return flags.json ? JSON.stringify(stale ? { ...report, stale } : report, null, 2) + '\n' : renderRanges(report);
  });
}

export const ranges: CommandDef = {
  name: 'ranges',
  define: (cmd) =>
    addSettingOptions(
      addSyncOption(cmd.description('show, per timeline, the windows of time and LSN the cluster can be recovered to').option('--json', 'print a JSON document (shape in docs/commands.md)')),
    ),
  async run(cfg, flags) {
    const ctx = await openArchiveContext(cfg);
    const stale = await syncFirst(ctx, flags);
    process.stdout.write((flags.json ? '' : staleNote(stale)) + (await runRanges(ctx, flags, stale)));
  },
};
