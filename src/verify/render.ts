/** `walship verify`'s text output: what was read, at what speed, and each problem named. */
import { isFailure } from './checks.js';
import type { VerifyReport } from './verify.js';

export function renderVerify(r: VerifyReport): string {
  const out: string[] = [];
  const mb = (r.checked.bytes / 1e6).toFixed(1);
  out.push(
    `verify${r.deep ? ' --deep' : r.full ? ' --full' : ''}: read ${r.checked.walFiles} WAL file(s) and ${r.checked.backups} backup(s), ${mb} MB (${(r.checked.rawBytes / 1e6).toFixed(1)} MB decompressed and checked` +
      (r.checked.unchanged > 0 ? `; ${r.checked.unchanged} WAL file(s) checked in depth before, found unchanged by their checksums` : '') +
      `) in ${r.seconds.toFixed(1)} s (${r.mbPerSecond.toFixed(1)} MB/s)` +
      (r.full ? '' : `; ${r.skipped.walFiles} WAL file(s) and ${r.skipped.backups} backup(s) verified before${r.previousVerify ? ` (last verify ${r.previousVerify})` : ''}, not read again (--full reads them)`),
  );
  const failures = r.problems.filter(isFailure);
  const notes = r.problems.filter((p) => !isFailure(p));
  for (const p of failures) out.push(`  ${p.kind.toUpperCase()}  ${p.what}: ${p.detail}`);
  for (const p of notes) out.push(`  ${p.kind}  ${p.what}: ${p.detail}`);
  out.push(failures.length === 0 ? `no damaged or missing object${notes.length > 0 ? ` (${notes.length} leftover(s) or orphan(s), which cost only space)` : ''}` : `${failures.length} problem(s): what they name cannot be restored from this repository as it is`);
  return out.join('\n') + '\n';
}
