/**
 * The last step of `walship restore`: prove that the restore_command written for the restored
 * server works, by running it once as PostgreSQL will run it — through /bin/sh, in the data
 * directory, as the data directory's owner, with %f and %p filled in — for the first WAL segment
 * recovery needs. The check runs without this shell's WALSHIP_* variables (the server will not
 * have them), so a command that leans on them, on a relative path, or on a file the server's
 * user cannot read, fails here and not at the server's start. A restore whose restore_command
 * cannot fetch that segment is not reported as done.
 */
import { spawn } from 'node:child_process';
import { chownSync, mkdtempSync, promises as fsp, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WalshipError } from '../errors.js';

/** Where the checked fetch delivers, relative to the data directory (not RECOVERYXLOG: no prefetcher starts). */
const CHECK_DEST = 'pg_wal/walship-restore-check';

/** PostgreSQL's replacement of %f, %p, %r and %% in restore_command. */
export function fillRestoreCommand(command: string, file: string, dest: string): string {
  return command.replace(/%(.)/g, (whole, c: string) => (c === 'f' ? file : c === 'p' ? dest : c === 'r' ? file : c === '%' ? '%' : whole));
}

export interface RestoreCheck {
  /** The WAL file fetched. */
  file: string;
  /** The user it ran as (the data directory's owner). */
  uid: number;
  ms: number;
}

/**
 * Runs `command` for `file` from `pgdata` as the module comment says; RESTORE_COMMAND_FAILED
 * (naming the exit status and the command's last line of error output) when it does not deliver.
 */
export async function checkRestoreCommand(pgdata: string, command: string, file: string, timeoutMs: number): Promise<RestoreCheck> {
  const started = Date.now();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WALSHIP_')));
  // Run as root on a data directory another user owns (restored with --force, say), the check runs
  // as that user, delivering into a directory of theirs: what restore wrote there is still root's.
  const owner = statSync(pgdata);
  const self = process.geteuid?.() ?? -1;
  const switchUser = self === 0 && owner.uid !== 0;
  const destDir = switchUser ? mkdtempSync(join(tmpdir(), 'walship-restore-check-')) : null;
  if (destDir) chownSync(destDir, owner.uid, owner.gid);
  const dest = destDir ? join(destDir, 'segment') : join(pgdata, CHECK_DEST);
  const outcome = await new Promise<{ code: number | null; signal: string | null; stderr: string; error?: string }>((resolve) => {
    const child = spawn('/bin/sh', ['-c', fillRestoreCommand(command, file, destDir ? dest : CHECK_DEST)], {
      cwd: pgdata,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(switchUser && { uid: owner.uid, gid: owner.gid }),
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-8192)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => resolve({ code: null, signal: null, stderr, error: err.message }));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
  const size = (await fsp.stat(dest).catch(() => null))?.size ?? 0;
  await fsp.rm(destDir ?? dest, { recursive: true, force: true });
  const uid = switchUser ? owner.uid : self;
  if (outcome.code === 0 && size > 0) return { file, uid, ms: Date.now() - started };
  const status = outcome.error
    ? `could not be started (${outcome.error})`
    : outcome.signal
      ? `was killed by ${outcome.signal}${outcome.signal === 'SIGKILL' ? ` after ${Math.round(timeoutMs / 1000)} s` : ''}`
      : outcome.code === 0
        ? 'exited 0 without delivering the file'
        : `exited ${outcome.code}`;
  const last = outcome.stderr.trim().split('\n').pop()?.trim();
  throw new WalshipError(
    'RESTORE_COMMAND_FAILED',
    `the restored data directory's restore_command does not work: fetching ${file} as the server will (sh -c, in ${pgdata}, as uid ${uid}) ${status}` +
      `${last ? `: ${last.length > 300 ? `${last.slice(0, 297)}...` : last}` : ''}; ` +
      `the backup is restored, but fix restore_command in ${join(pgdata, 'postgresql.auto.conf')} before starting the server`,
  );
}
