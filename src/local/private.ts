/**
 * Which local files walship trusts. Its private directories (the prefetch spool, the read-ahead
 * state, the agent's directory) and everything in them, and the catalog, decide what a
 * per-file call answers: a spooled segment is delivered, a record proves a push. So another local
 * user must not be able to plant or change any of them.
 *
 * A directory is private when `lstat` shows a real directory (not a symbolic link) that belongs
 * to the user walship runs as and that no one else can write (no group or other write bit), and
 * when its parent does not let anyone else replace it: the parent belongs to this user or root,
 * and if others may write in it, it has the sticky bit (as /tmp does). A file in it is used only
 * when it is a regular file of this user's that no one else can write, opened without following
 * a symbolic link. Anything else is never used: the caller works without it (and says so).
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, statSync, type BigIntStats, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { logger } from '../log.js';

const S_ISVTX = 0o1000;

function euid(): number {
  return process.geteuid?.() ?? -1;
}

/** A mode's permission bits as octal text, e.g. 0755. */
function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8)}`;
}

/** Why `st` (an lstat or fstat, plain or bigint) is not a directory or file walship may trust, or null when it is one. */
export function trustProblem(st: Stats | BigIntStats, kind: 'directory' | 'file'): string | null {
  if (st.isSymbolicLink()) return 'is a symbolic link';
  if (kind === 'directory' ? !st.isDirectory() : !st.isFile()) return `is not a ${kind === 'directory' ? 'directory' : 'regular file'}`;
  const [uid, mode] = [Number(st.uid), Number(st.mode)];
  const me = euid();
  if (me >= 0 && uid !== me) return `belongs to uid ${uid}, not to uid ${me} that walship runs as`;
  if ((mode & 0o022) !== 0) return `is writable by ${(mode & 0o020) !== 0 ? 'its group' : 'others'} (mode ${octal(mode)})`;
  return null;
}

/** Why others could replace entries of `dir` (a private directory's parent), or null. */
function parentProblem(dir: string): string | null {
  let st: Stats;
  try {
    st = statSync(dir);
  } catch {
    return null; // the directory itself cannot be there either: reported by its own check
  }
  const me = euid();
  if (me >= 0 && st.uid !== me && st.uid !== 0) return `its parent ${dir} belongs to uid ${st.uid}, who could replace it`;
  if ((st.mode & 0o022) !== 0 && (st.mode & S_ISVTX) === 0) return `its parent ${dir} is writable by others without the sticky bit (mode ${octal(st.mode)})`;
  return null;
}

/** ok: usable; absent: not there (and not to be made); uncreatable: could not be made (no permission, ...); untrusted: must not be used. */
export type PrivateDir = { state: 'ok' } | { state: 'absent' } | { state: 'uncreatable'; reason: string } | { state: 'untrusted'; reason: string };

/**
 * The state of the private directory `dir`; with `create`, made first (mode 0700, with any
 * missing parents) when it is not there. Synchronous: it is on the per-file calls' path.
 */
export function privateDir(dir: string, opts: { create?: boolean } = {}): PrivateDir {
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { state: 'untrusted', reason: `cannot be examined (${(err as NodeJS.ErrnoException).code})` };
    if (!opts.create) return { state: 'absent' };
    // Never made where it could not be used (it would stand in the way of the user who can).
    const parent = parentProblem(dirname(dir));
    if (parent !== null) return { state: 'untrusted', reason: parent };
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      st = lstatSync(dir);
    } catch (e) {
      return { state: 'uncreatable', reason: `cannot be created (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
    }
  }
  const reason = trustProblem(st, 'directory') ?? parentProblem(dirname(dir));
  return reason === null ? { state: 'ok' } : { state: 'untrusted', reason };
}

/**
 * privateDir for a caller that goes on without `dir` when it is not usable, saying so: one that is
 * not safe is a warning ("`what` is not safe to use; `without` (`remedy`)"), one that cannot be
 * created (this user may not write its parent: no danger) a debug line. Returns the state.
 */
export function privateDirOrSay(dir: string, opts: { create?: boolean; what: string; without: string; remedy: string }): PrivateDir['state'] {
  const found = privateDir(dir, { create: opts.create });
  if (found.state === 'untrusted') logger.warn(`${opts.what} is not safe to use; ${opts.without} (${opts.remedy})`, { dir, problem: found.reason });
  else if (found.state === 'uncreatable') logger.debug(`${opts.what} cannot be created; ${opts.without}`, { dir, problem: found.reason });
  return found.state;
}

/**
 * The text of `path`, a file in a private directory, with its stat, when it is trustworthy
 * (above); null when it is absent or not. Opened with O_NOFOLLOW and checked on the open
 * descriptor, so what is checked is what is read.
 */
export function readPrivate(path: string): { text: string; st: Stats } | null {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    if (trustProblem(st, 'file') !== null) return null;
    return { text: readFileSync(fd, 'utf8'), st };
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** readPrivate's text alone. */
export function readPrivateFile(path: string): string | null {
  return readPrivate(path)?.text ?? null;
}
