/**
 * The last step of `walship restore`: prove that the restore_command written for the restored
 * server works, by running it once as PostgreSQL will run it — through /bin/sh, in the data
 * directory, with %f and %p filled in — for the first WAL segment recovery needs. The check runs
 * without this shell's WALSHIP_* variables (the server will not have them), so a command that
 * leans on them, or on a relative path, fails here and not at the server's start. A restore
 * whose restore_command cannot fetch that segment is not reported as done.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
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
  ms: number;
}

/**
 * Runs `command` for `file` from `pgdata` as the module comment says; RESTORE_COMMAND_FAILED
 * (naming the exit status and the command's last line of error output) when it does not deliver.
 */
export async function checkRestoreCommand(pgdata: string, command: string, file: string, timeoutMs: number): Promise<RestoreCheck> {
  const started = Date.now();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WALSHIP_')));
  const dest = join(pgdata, CHECK_DEST);
  const outcome = await new Promise<{ code: number | null; signal: string | null; stderr: string; error?: string }>((resolve) => {
    const child = spawn('/bin/sh', ['-c', fillRestoreCommand(command, file, CHECK_DEST)], { cwd: pgdata, env, stdio: ['ignore', 'ignore', 'pipe'] });
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
  await fsp.rm(dest, { force: true });
  if (outcome.code === 0 && size > 0) return { file, ms: Date.now() - started };
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
    `the restored data directory's restore_command does not work: fetching ${file} as the server will (sh -c, in ${pgdata}) ${status}` +
      `${last ? `: ${last.length > 300 ? `${last.slice(0, 297)}...` : last}` : ''}; ` +
      `the backup is restored, but fix restore_command in ${join(pgdata, 'postgresql.auto.conf')} before starting the server`,
  );
}
