/**
 * The one way walship writes a whole file on this host (a delivered WAL file, the spool's files,
 * read-ahead records, locks, the filesystem repository's objects):
 *
 *   1. a temporary file `.<name>.<pid>.<random>.tmp` in the target's directory, created with
 *      O_CREAT|O_EXCL|O_NOFOLLOW: nothing planted at that name (a file, a symbolic link) is ever
 *      opened, followed or overwritten, and the random part makes the name unguessable;
 *   2. the data written (whole, or chunk by chunk as it arrives), and with `durable` fsynced;
 *   3. renamed over the target, or with `createOnly` hard-linked to it (which fails when the
 *      target exists, so two writers can never both win and nothing is replaced);
 *   4. with `durable`, the directory fsynced;
 *   5. on any failure, and after a link, the temporary file removed.
 *
 * Readers therefore see the old file, the new file, or none: never a part. A process killed
 * between 1 and 5 leaves its temporary file; `isAbandonedTemp` tells its cleaners which those are.
 */
import { closeSync, constants as fsc, fsyncSync, linkSync, lstatSync, openSync, readSync, renameSync, rmSync, writeSync, promises as fsp } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { processAlive } from '../pid.js';

export interface AtomicWriteOptions {
  /** Permission bits of the new file (the umask applies); default 0600. */
  mode?: number;
  /** fsync the file before it takes the final name, and the directory after. */
  durable?: boolean;
  /** Never replace: 'exists' when the target is there (the new data is then discarded). */
  createOnly?: boolean;
}

export type AtomicWriteResult = 'written' | 'exists';

const TEMP_FLAGS = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
/** `.<name>.<pid>.<random hex>.tmp` (the filesystem repository's writer used 8 hex digits before this helper). */
const TEMP_RE = /^\.(.+)\.(\d+)\.([0-9a-f]{8,})\.tmp$/;
/** A filesystem without hard links answers link() with one of these. */
const NO_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

let pool = Buffer.alloc(0);
/**
 * 12 random hex digits. From /dev/urandom (loading node:crypto would cost a per-file call ~2 ms),
 * else from Math.random: O_EXCL is what makes the name safe, the randomness only unguessable.
 */
function randomHex(): string {
  if (pool.length < 6) {
    pool = Buffer.alloc(96);
    try {
      const fd = openSync('/dev/urandom', 'r');
      try {
        readSync(fd, pool);
      } finally {
        closeSync(fd);
      }
    } catch {
      for (let i = 0; i < pool.length; i++) pool[i] = Math.floor(Math.random() * 256);
    }
  }
  const out = pool.subarray(0, 6).toString('hex');
  pool = pool.subarray(6);
  return out;
}

/** A fresh temporary name for `path`, in its directory. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomHex()}.tmp`);
}

/**
 * Whether `name` (an entry of a directory walship writes) is a temporary file of this helper that
 * no live process on this host owns, and (with `minAgeMs`, for directories other hosts may share)
 * whose modification time `mtimeMs` is at least that old.
 */
export function isAbandonedTemp(name: string, mtimeMs?: number, minAgeMs = 0): boolean {
  const m = TEMP_RE.exec(name);
  if (!m) return false;
  const pid = Number(m[2]);
  if (pid === process.pid || processAlive(pid)) return false;
  return minAgeMs <= 0 || (mtimeMs !== undefined && Date.now() - mtimeMs >= minAgeMs);
}

/** Whether `name` looks like a temporary file of this helper (any owner). */
export function isTempName(name: string): boolean {
  return TEMP_RE.test(name);
}

function syncDirSync(dir: string): void {
  const fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsyncs a directory, making the names created or renamed in it durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Creates the temporary file, retrying on the (unlikely) name already taken. */
function openTempSync(path: string, mode: number): { tmp: string; fd: number } {
  for (let attempt = 0; ; attempt++) {
    const tmp = tempPathFor(path);
    try {
      return { tmp, fd: openSync(tmp, TEMP_FLAGS, mode) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err;
    }
  }
}

async function openTemp(path: string, mode: number): Promise<{ tmp: string; fh: fsp.FileHandle }> {
  for (let attempt = 0; ; attempt++) {
    const tmp = tempPathFor(path);
    try {
      return { tmp, fh: await fsp.open(tmp, TEMP_FLAGS, mode) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err;
    }
  }
}

/** Step 3: the temporary file takes the final name. */
function placeSync(tmp: string, path: string, createOnly: boolean): AtomicWriteResult {
  if (!createOnly) {
    renameSync(tmp, path);
    return 'written';
  }
  try {
    linkSync(tmp, path);
    return 'written';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') return 'exists';
    if (!NO_LINKS.has(code)) throw err;
  }
  // A filesystem without hard links: look, then rename (a narrow race remains).
  try {
    lstatSync(path);
    return 'exists';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  renameSync(tmp, path);
  return 'written';
}

/** Writes `data` to `path` as the module comment says; synchronous (for the per-file calls). */
export function writeFileAtomicSync(path: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): AtomicWriteResult {
  const { tmp, fd } = openTempSync(path, opts.mode ?? 0o600);
  let result: AtomicWriteResult;
  try {
    try {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
      if (opts.durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    result = placeSync(tmp, path, !!opts.createOnly);
    if (opts.durable && result === 'written') syncDirSync(dirname(path));
  } finally {
    rmSync(tmp, { force: true });
  }
  return result;
}

/**
 * Writes `data` to `path` as the module comment says. `data` may arrive in chunks (an async
 * iterable, written as they come): when it throws, nothing takes the name and the error is
 * passed on.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array | AsyncIterable<Uint8Array>, opts: AtomicWriteOptions = {}): Promise<AtomicWriteResult> {
  const { tmp, fh } = await openTemp(path, opts.mode ?? 0o600);
  let result: AtomicWriteResult;
  try {
    try {
      if (typeof data === 'string' || data instanceof Uint8Array) await fh.writeFile(data);
      else {
        for await (const chunk of data) {
          for (let off = 0; off < chunk.length; ) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
        }
      }
      if (opts.durable) await fh.sync();
    } finally {
      await fh.close();
    }
    result = placeSync(tmp, path, !!opts.createOnly);
    if (opts.durable && result === 'written') await syncDir(dirname(path));
  } finally {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
  return result;
}
