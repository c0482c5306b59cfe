/**
 * Every error walship reports has a name (its code), a one-line message that says what to do,
 * and an exit code. This file is the one place where errors map to exit codes.
 */

export const ExitCode = {
  OK: 0,
  /** archive-fetch only: the file is not in the archive (the normal end of recovery). */
  NOT_FOUND: 1,
  /** Bad command line or configuration. */
  USAGE: 2,
  /** The input file is not acceptable WAL (wrong name, truncated, corrupt, content does not match name). */
  INVALID_INPUT: 3,
  /** A different file is already archived under that name, or the file does not continue the archived history. */
  CONFLICT: 4,
  /** The file or repository belongs to another cluster (system identifier, version, segment size). */
  WRONG_CLUSTER: 5,
  /** The repository could not be read or written (unreachable, permissions, I/O). */
  REPOSITORY: 6,
  /** The local SQLite catalog could not be opened, migrated or written. */
  CATALOG: 7,
  /** An archived object is damaged (checksum mismatch, undecodable data). */
  CORRUPT: 8,
  /** A recovery target cannot be reached with what is archived. */
  UNREACHABLE_TARGET: 9,
  /** walship restore: the restored data directory's restore_command does not fetch WAL. */
  RESTORE_CHECK: 10,
  /** Another walship process holds the repository's lock for this command (walship expire). */
  BUSY: 11,
  /** walship check: archiving into this repository does not work end to end (the reason is named). */
  CHECK: 12,
  /** walship drill: the restored cluster did not come up, or a check failed (the report names each). */
  DRILL: 13,
  /** walship drill: the scratch directory's filesystem has no room for the restore (the numbers are printed). */
  NO_SPACE: 14,
  /** A bug in walship. */
  INTERNAL: 70,
  /** walship status only (the Nagios convention: 0 ok, 1 warning, 2 critical): it could not tell. */
  STATUS_UNKNOWN: 3,
  /**
   * archive-fetch, policy `fetch_on_error = abort` (and `auto` in archive recovery, the
   * default): any failure other than "not in the archive". PostgreSQL treats exit codes above
   * 125 as fatal and aborts recovery instead of ending it early on a timeline that silently
   * forks history.
   */
  FETCH_ABORT: 255,
  /**
   * archive-fetch, policy `fetch_on_error = retry` (and `auto` in standby mode): PostgreSQL sees
   * "not available" (1-125) and, on a standby, falls back to streaming and asks again later.
   * Distinct from 1 so logs tell "missing" from "failed".
   */
  FETCH_RETRY: 3,
} as const;

export type ErrorCode =
  | 'USAGE'
  | 'CONFIG_MISSING'
  | 'CONFIG_INVALID'
  | 'NOT_WAL'
  | 'INVALID_WAL'
  | 'FILE_UNREADABLE'
  | 'WAL_CONFLICT'
  | 'HISTORY_DIVERGED'
  | 'WRONG_CLUSTER'
  | 'REPOSITORY_UNAVAILABLE'
  | 'REPOSITORY_INVALID'
  | 'CATALOG_ERROR'
  | 'CATALOG_MISMATCH'
  | 'OBJECT_CORRUPT'
  | 'OBJECT_LOST'
  | 'NOT_IN_ARCHIVE'
  | 'TARGET_UNREACHABLE'
  | 'DEST_UNWRITABLE'
  | 'RESTORE_COMMAND_FAILED'
  | 'REPOSITORY_BUSY'
  | 'CHECK_FAILED'
  | 'DRILL_FAILED'
  | 'NO_SPACE'
  | 'INTERNAL';

const EXIT_BY_CODE: Record<ErrorCode, number> = {
  USAGE: ExitCode.USAGE,
  CONFIG_MISSING: ExitCode.USAGE,
  CONFIG_INVALID: ExitCode.USAGE,
  NOT_WAL: ExitCode.INVALID_INPUT,
  INVALID_WAL: ExitCode.INVALID_INPUT,
  FILE_UNREADABLE: ExitCode.INVALID_INPUT,
  WAL_CONFLICT: ExitCode.CONFLICT,
  HISTORY_DIVERGED: ExitCode.CONFLICT,
  WRONG_CLUSTER: ExitCode.WRONG_CLUSTER,
  REPOSITORY_UNAVAILABLE: ExitCode.REPOSITORY,
  REPOSITORY_INVALID: ExitCode.REPOSITORY,
  CATALOG_ERROR: ExitCode.CATALOG,
  CATALOG_MISMATCH: ExitCode.CATALOG,
  OBJECT_CORRUPT: ExitCode.CORRUPT,
  OBJECT_LOST: ExitCode.CORRUPT,
  NOT_IN_ARCHIVE: ExitCode.NOT_FOUND,
  TARGET_UNREACHABLE: ExitCode.UNREACHABLE_TARGET,
  DEST_UNWRITABLE: ExitCode.REPOSITORY,
  RESTORE_COMMAND_FAILED: ExitCode.RESTORE_CHECK,
  REPOSITORY_BUSY: ExitCode.BUSY,
  CHECK_FAILED: ExitCode.CHECK,
  DRILL_FAILED: ExitCode.DRILL,
  NO_SPACE: ExitCode.NO_SPACE,
  INTERNAL: ExitCode.INTERNAL,
};

/**
 * Refusals of a WAL file itself (not of the repository or the catalog): PostgreSQL retries such a
 * file forever, so archive-push records them (`walship info`), and the background pusher pushes
 * nothing newer until it is archived.
 */
export const FILE_REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['NOT_WAL', 'INVALID_WAL', 'FILE_UNREADABLE', 'WAL_CONFLICT', 'WRONG_CLUSTER', 'HISTORY_DIVERGED']);

export class WalshipError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'WalshipError';
  }
  get exitCode(): number {
    return EXIT_BY_CODE[this.code];
  }
}

export type FetchErrorPolicy = 'auto' | 'abort' | 'retry';

/**
 * What `auto` means where the command runs: retry in standby mode, abort otherwise. A standby
 * (standby.signal in the data directory, where PostgreSQL runs restore_command) never ends
 * recovery on "not available": it streams from its primary and asks the archive again, so a
 * fatal code would only bring it down. In archive recovery (recovery.signal) "not available"
 * ends recovery and promotes early, so there a failure must be fatal.
 */
export function effectiveFetchPolicy(policy: FetchErrorPolicy, standbyMode: boolean): 'abort' | 'retry' {
  return policy === 'auto' ? (standbyMode ? 'retry' : 'abort') : policy;
}

/** The exit code for an error, given the command it ended and (for archive-fetch) the policy. */
export function exitCodeFor(err: unknown, command: string, fetchPolicy: 'abort' | 'retry' = 'abort'): number {
  const we = asWalshipError(err);
  if (command === 'status') return ExitCode.STATUS_UNKNOWN;
  if (command === 'archive-fetch') {
    if (we.code === 'NOT_IN_ARCHIVE') return ExitCode.NOT_FOUND;
    return fetchPolicy === 'retry' ? ExitCode.FETCH_RETRY : ExitCode.FETCH_ABORT;
  }
  return we.exitCode;
}

export function asWalshipError(err: unknown): WalshipError {
  if (err instanceof WalshipError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  const msg = e && typeof e.message === 'string' ? e.message : String(err);
  return new WalshipError('INTERNAL', `unexpected error: ${msg.split('\n')[0]}`, { cause: err });
}

/** One line describing a system error (errno code and message), for wrapping into a WalshipError. */
export function describeSystemError(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e && typeof e.code === 'string') {
    const msg = (e.message ?? '').split('\n')[0]!;
    return msg.startsWith(e.code) ? msg : `${e.code}: ${msg}`;
  }
  if (e && typeof e.message === 'string') return e.message.split('\n')[0]!;
  return String(err);
}
