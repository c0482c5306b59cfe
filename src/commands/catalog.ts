/**
 * `walship catalog sync` and `walship catalog rebuild`: the local catalog, a cache of the
 * repository, brought up to date or made anew from the repository alone.
 */
import { openArchiveContext } from '../archive/context.js';
import type { SyncOutcome } from '../sync/sync.js';
import { addSettingOptions, type CommandDef } from './options.js';

function catalogCommand(sub: 'sync' | 'rebuild', description: string, fn: 'syncCatalog' | 'rebuildCatalog'): CommandDef {
  return {
    name: `catalog ${sub}`,
    define: (cmd) =>
      addSettingOptions(
        cmd
          .description(description)
          .option('--rescan', 'download and scan the segments whose object carries no scan (archived by older walship)')
          .option('--json', 'print what was read as JSON'),
      ),
    async run(cfg, flags) {
      const ctx = await openArchiveContext(cfg);
      const out = await (await import('../sync/sync.js'))[fn](ctx, { rescan: !!flags.rescan });
      process.stdout.write(flags.json ? JSON.stringify(out, null, 2) + '\n' : renderSync(ctx.catalogPath, out));
    },
  };
}

export const catalogSync = catalogCommand('sync', 'bring the catalog up to date with the repository (reads only what can be new)', 'syncCatalog');
export const catalogRebuild = catalogCommand('rebuild', 'make the catalog anew from the repository alone (safe while pushes go on; killed, it leaves the old one)', 'rebuildCatalog');

export function renderSync(catalogPath: string, o: SyncOutcome): string {
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
