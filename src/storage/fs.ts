/**
 * Filesystem repository driver. Writes go through local/atomic-write.ts, durable: a hidden
 * temporary file in the target directory, fsynced, then hard-linked into place (link() fails if
 * the name exists, so two concurrent writers can never both win and nothing is overwritten), and
 * the directory fsynced. Temporary files a killed push left behind are removed by a later one.
 */
import { promises as fsp, type Dirent } from 'node:fs';
import { dirname, join } from 'node:path';
import { isAbandonedTemp, isTempName, syncDir, writeFileAtomic } from '../local/atomic-write.js';
import { WalshipError, describeSystemError } from '../errors.js';
import { runPool } from '../pool.js';
import { STREAM_CHUNK, bodyChunks, startedStream, type Body, type Leftover, type ListOptions, type ObjectInfo, type PutOptions, type StorageDriver } from './driver.js';

/** What the atomic-write helper writes for a body: the buffer, or the source's bytes in pieces. */
const dataOf = (body: Body): Buffer | AsyncIterable<Buffer> => (Buffer.isBuffer(body) ? body : bodyChunks(body));

export class FsDriver implements StorageDriver {
  readonly location: string;
  /** Directories already swept of abandoned temporary files by this process. */
  private readonly swept = new Set<string>();
  constructor(readonly root: string) {
    this.location = root;
  }

  private path(key: string): string {
    if (key.split('/').some((p) => p === '..' || p === '')) throw new Error(`bad storage key ${key}`);
    return join(this.root, ...key.split('/'));
  }

  private unavailable(what: string, err: unknown): WalshipError {
    return new WalshipError('REPOSITORY_UNAVAILABLE', `cannot ${what} in repository ${this.root}: ${describeSystemError(err)}`, {
      cause: err,
    });
  }

  async check(): Promise<void> {
    let st;
    try {
      st = await fsp.stat(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new WalshipError(
          'REPOSITORY_INVALID',
          `repository ${this.root} does not exist: create it with "walship init", or check the path and that its filesystem is mounted`,
        );
      }
      throw this.unavailable('stat the root', err);
    }
    if (!st.isDirectory()) throw new WalshipError('REPOSITORY_INVALID', `repository ${this.root} is not a directory`);
  }

  async create(): Promise<void> {
    try {
      await fsp.mkdir(this.root, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw this.unavailable('create the root', err);
    }
  }

  async get(key: string): Promise<Buffer | null> {
    this.ops++;
    try {
      return await fsp.readFile(this.path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.absentOrRootGone();
      throw this.unavailable(`read ${key}`, err);
    }
  }

  getStream(key: string): Promise<AsyncGenerator<Buffer, void> | null> {
    return startedStream(this.readChunks(key));
  }

  private async *readChunks(key: string): AsyncGenerator<Buffer, void> {
    this.ops++;
    let fh;
    try {
      fh = await fsp.open(this.path(key), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return void (await this.absentOrRootGone());
      throw this.unavailable(`open ${key}`, err);
    }
    try {
      yield Buffer.alloc(0);
      for (;;) {
        const buf = Buffer.allocUnsafe(STREAM_CHUNK);
        let bytesRead: number;
        try {
          ({ bytesRead } = await fh.read(buf, 0, STREAM_CHUNK, null));
        } catch (err) {
          throw this.unavailable(`read ${key}`, err);
        }
        if (bytesRead === 0) return;
        yield bytesRead === STREAM_CHUNK ? buf : buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  }

  async getRange(key: string, start: number, length: number): Promise<Buffer | null> {
    this.ops++;
    let fh;
    try {
      fh = await fsp.open(this.path(key), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.absentOrRootGone();
      throw this.unavailable(`open ${key}`, err);
    }
    try {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, start);
      return buf.subarray(0, bytesRead);
    } catch (err) {
      throw this.unavailable(`read ${key}`, err);
    } finally {
      await fh.close();
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    this.ops++;
    try {
      const st = await fsp.stat(this.path(key));
      return { key, size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.absentOrRootGone();
      throw this.unavailable(`stat ${key}`, err);
    }
  }

  /** A missing object is "absent" only while the repository root itself is there. */
  private async absentOrRootGone(): Promise<null> {
    await this.check();
    return null;
  }

  /**
   * The key's file path, with its directory (and any parent missing) created 0700 and made
   * durable, and the first time in this process, the abandoned temporary files in it removed.
   */
  private async prepare(key: string): Promise<string> {
    const final = this.path(key);
    const dir = dirname(final);
    await this.check();
    try {
      const created = await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      if (created !== undefined) await this.syncDirsUpFrom(created, dir);
    } catch (err) {
      throw this.unavailable(`create directory for ${key}`, err);
    }
    if (!this.swept.has(dir)) {
      this.swept.add(dir);
      await sweepAbandoned(dir);
    }
    return final;
  }

  async putIfAbsent(key: string, body: Body, _opts?: PutOptions): Promise<'created' | 'exists'> {
    this.ops++;
    const written = await this.write(key, `store ${key}`, (final) => writeFileAtomic(final, dataOf(body), { mode: OBJECT_MODE, durable: true, createOnly: true }));
    return written === 'written' ? 'created' : 'exists';
  }

  async replace(key: string, body: Body, _opts?: PutOptions): Promise<void> {
    this.ops++;
    await this.write(key, `replace ${key}`, (final) => writeFileAtomic(final, dataOf(body), { mode: OBJECT_MODE, durable: true }));
  }

  /**
   * Writes into the key's directory, made first. A directory that `remove` emptied and removed
   * between the two (an expire running beside a push) is made again, once.
   */
  private async write<T>(key: string, what: string, fn: (final: string) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const final = await this.prepare(key);
      try {
        return await fn(final);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && attempt === 0) {
          this.swept.delete(dirname(final));
          continue;
        }
        throw this.unavailable(what, err);
      }
    }
  }

  async remove(keys: readonly string[]): Promise<void> {
    const dirs = new Set<string>();
    await runPool(keys, UNLINKS_AT_ONCE, async (key) => {
      this.ops++;
      const path = this.path(key);
      try {
        await fsp.unlink(path);
        dirs.add(dirname(path));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw this.unavailable(`remove ${key}`, err);
      }
    });
    // Deepest first: a directory left empty goes too (never the root), and its parent is synced.
    const parents = new Set<string>();
    for (const dir of [...dirs].sort((a, b) => b.length - a.length)) {
      try {
        await syncDir(dir);
        if (dir !== this.root && (await fsp.readdir(dir)).length === 0) {
          await fsp.rmdir(dir);
          parents.add(dirname(dir));
        }
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTEMPTY' && code !== 'EEXIST') throw this.unavailable(`remove from ${dir}`, err);
      }
    }
    for (const dir of parents) await syncDir(dir).catch(() => undefined);
  }

  /** A directory's entries; none when it does not exist. */
  private async entries(dir: string): Promise<Dirent[]> {
    try {
      this.ops++;
      return await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw this.unavailable(`list ${dir}`, err);
    }
  }

  async *leftovers(prefix: string): AsyncIterable<Leftover> {
    const base = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const walk = async function* (this: FsDriver, dir: string, rel: string): AsyncIterable<Leftover> {
      const entries = await this.entries(dir);
      for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const key = `${rel}${e.name}`;
        if (e.isDirectory()) {
          if (!e.name.startsWith('.') && (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`))) yield* walk.call(this, join(dir, e.name), `${key}/`);
        } else if (isTempName(e.name) && key.startsWith(prefix.slice(0, prefix.lastIndexOf('/') + 1))) {
          const st = await fsp.lstat(join(dir, e.name)).catch(() => null);
          if (st) yield { key, size: st.size, since: st.mtime.toISOString(), kind: 'temporary-file' };
        }
      }
    };
    yield* walk.call(this, base === '' ? this.root : this.path(base), base === '' ? '' : `${base}/`);
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncIterable<ObjectInfo> {
    const after = opts.startAfter ?? '';
    const base = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    // Depth first over directories read in key order: a directory's entries sort as keys do when
    // a directory's name is taken with its '/' (so "a.b" comes before "a/..."). A directory none
    // of whose keys can match the prefix or sort after startAfter is not read.
    const walk = async function* (this: FsDriver, dir: string, rel: string): AsyncIterable<ObjectInfo> {
      const entries = await this.entries(dir);
      const named = entries.filter((e) => !e.name.startsWith('.')).map((e) => ({ e, key: `${rel}${e.name}${e.isDirectory() ? '/' : ''}` }));
      named.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      for (const { e, key } of named) {
        if (e.isDirectory()) {
          // Every key below starts with `key`: skip it unless some could start with the prefix and sort after startAfter.
          const couldMatch = key.startsWith(prefix) || prefix.startsWith(key);
          const couldFollow = after.startsWith(key) || key > after;
          if (couldMatch && couldFollow) yield* walk.call(this, join(dir, e.name), key);
          continue;
        }
        if (!key.startsWith(prefix) || key <= after) continue;
        const st = await fsp.stat(join(dir, e.name)).catch(() => null);
        if (st) yield { key, size: st.size };
      }
    };
    yield* walk.call(this, base === '' ? this.root : this.path(base), base === '' ? '' : `${base}/`);
  }

  async children(dir: string): Promise<string[]> {
    if (!dir.endsWith('/')) throw new Error(`children: ${dir} is not a directory prefix`);
    try {
      this.ops++;
      return (await fsp.readdir(this.path(dir.slice(0, -1)))).filter((n) => !n.startsWith('.')).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
      throw this.unavailable(`list ${dir}`, err);
    }
  }

  /** Operations on the filesystem so far (the `requests` of StorageDriver). */
  private ops = 0;
  get requests(): number {
    return this.ops;
  }

  /** Makes new directories durable: the parent of the first one created, and each created one above `dir`. */
  private async syncDirsUpFrom(firstCreated: string, dir: string): Promise<void> {
    await syncDir(dirname(firstCreated));
    for (let d = dir; d.length >= firstCreated.length && d !== dirname(d); d = dirname(d)) {
      if (d !== dir) await syncDir(d);
    }
  }
}

/** Unlinks in flight at once in `remove` (each is a system call on libuv's thread pool). */
const UNLINKS_AT_ONCE = 16;
/** Objects are created 0640 (the umask applies); the directories walship creates are 0700. */
const OBJECT_MODE = 0o640;
/**
 * A temporary file is abandoned when its writer is not alive here and it has not changed for this
 * long (another host sharing the repository may still be writing one: its pid means nothing here).
 */
const ABANDONED_AFTER_MS = 15 * 60_000;

/** Removes the temporary files a killed writer left in `dir`. Never fails. */
async function sweepAbandoned(dir: string): Promise<void> {
  try {
    for (const name of await fsp.readdir(dir)) {
      if (!isTempName(name)) continue;
      const path = join(dir, name);
      const st = await fsp.lstat(path).catch(() => null);
      if (st?.isFile() && isAbandonedTemp(name, st.mtimeMs, ABANDONED_AFTER_MS)) await fsp.rm(path, { force: true });
    }
  } catch {
    /* a listing or removal that fails leaves the files for a later push */
  }
}
