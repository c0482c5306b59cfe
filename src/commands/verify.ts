/** `walship verify`: read the repository back and name what could not be restored from it (src/verify/). */
import { ExitCode } from '../errors.js';
import { openArchiveContext } from '../archive/context.js';
import { addSettingOptions, wholeNumberFlag, type CommandDef } from './options.js';

export const verify: CommandDef = {
  name: 'verify',
  define: (cmd) =>
    addSettingOptions(
      cmd
        .description('read the repository back: every archived object, every backup against its manifest, the continuity of the WAL, and leftovers')
        .option('--full', 'read every stored byte again; what an earlier verify checked in depth is checked against its recorded checksums (default: read only what no earlier verify found sound)')
        .option('--deep', 'as --full, and decompress and check everything in depth again (every record, every piece)')
        .option('--parallel <n>', 'objects read at once (memory: about that many objects)', '4')
        .option('--json', 'print a JSON document (shape in docs/commands.md)')
        .addHelpText('after', '\nExit codes: 0 nothing damaged or missing (leftovers are listed); 8 damaged or missing objects, diverged or missing WAL (each named); 6 repository unreadable; 7 catalog.'),
    ),
  async run(cfg, flags) {
    const ctx = await openArchiveContext(cfg);
    const { runVerify } = await import('../verify/verify.js');
    const { renderVerify } = await import('../verify/render.js');
    const report = await runVerify(ctx, { full: !!flags.full, deep: !!flags.deep, parallel: wholeNumberFlag('parallel', flags.parallel, 1), progress: !flags.json && process.stderr.isTTY === true, cfg });
    process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : renderVerify(report));
    return report.failures > 0 ? ExitCode.CORRUPT : ExitCode.OK;
  },
};
