/** Exit-code texts shown by --help (kept in step with src/errors.ts and docs/commands.md, "Exit codes"). */
export const EXIT_CODES_HELP = `Exit codes:
  0    success
  2    bad command line or configuration
  3    the file is not acceptable WAL (name, size, header, pages)
  4    a different file is already archived under that name, or the file does not continue
       the history archived on its timeline (another server with this system identifier)
  5    the file or repository belongs to another cluster
  6    the repository cannot be read or written
  7    the catalog cannot be opened or written
  8    an archived object is damaged (verify: damaged or missing objects found)
  9    a recovery target cannot be reached (plan, restore)
  10   restore: the restored data directory's restore_command does not work
  11   expire: another expire holds the repository's lock
  12   check: archiving into this repository does not work (the reason is printed)
  13   drill: the restored cluster did not come up, or a check failed (each is named)
  14   drill: no room for the scratch cluster (the numbers are printed)
  70   internal error (a bug: please report it)
archive-fetch has its own codes: see "walship archive-fetch --help".`;

export const FETCH_EXIT_HELP = `Exit codes (PostgreSQL reads these):
  0    delivered: <dest> holds the verified file
  1    not in the archive (the normal end of recovery)
  255  any other failure (repository unreachable, checksum mismatch, corrupt data, another
       cluster's file, bad configuration), in archive recovery (recovery.signal) with
       fetch_on_error = auto (the default), or always with fetch_on_error = abort.
       PostgreSQL aborts recovery on codes above 125 instead of treating the file as missing:
       ending recovery early would promote a server that lacks WAL and fork history.
  3    the same failures in standby mode (standby.signal) with fetch_on_error = auto, or always
       with fetch_on_error = retry: PostgreSQL treats the file as not available, streams on
       and asks again later. A damaged object is never delivered either way.`;
