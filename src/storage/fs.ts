/**
 * Filesystem repository driver. Writes go to a hidden temporary file in the target directory,
 * are fsynced, then hard-linked into place (link() fails if the name exists, so two concurrent
 * writers can never both win and nothing is overwritten), and the directory is fsynced.
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { WalshipError, describeSystemError } from '../errors.js';
import type { ObjectInfo, PutOptions, StorageDriver } from './driver.js';

export class FsDriver implements StorageDriver {
  readonly location: string;
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
      await fsp.mkdir(this.root, { recursive: true });
    } catch (err) {
      throw this.unavailable('create the root', err);
    }
  }

  async get(key: string): Promise<Buffer | null> {
    try {
      return await fsp.readFile(this.path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.absentOrRootGone();
      throw this.unavailable(`read ${key}`, err);
    }
  }

  async getRange(key: string, start: number, length: number): Promise<Buffer | null> {
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

  /** Writes `body` to a hidden, fsynced temporary file in the key's directory; returns its path. */
  private async writeTemp(key: string, body: Buffer): Promise<{ tmp: string; final: string; dir: string }> {
    const final = this.path(key);
    const dir = dirname(final);
    await this.check();
    try {
      const created = await fsp.mkdir(dir, { recursive: true });
      if (created !== undefined) await this.syncDirsUpFrom(created, dir);
    } catch (err) {
      throw this.unavailable(`create directory for ${key}`, err);
    }
    const tmp = join(dir, `.${final.slice(dir.length + 1)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      const fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o640);
      try {
        await fh.writeFile(body);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw this.unavailable(`write ${key}`, err);
    }
    return { tmp, final, dir };
  }

  async putIfAbsent(key: string, body: Buffer, _opts?: PutOptions): Promise<'created' | 'exists'> {
    const { tmp, final, dir } = await this.writeTemp(key, body);
    try {
      try {
        await fsp.link(tmp, final);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') return 'exists';
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
        // A filesystem without hard links: check, then rename (a narrow race remains).
        if (await this.head(key)) return 'exists';
        await fsp.rename(tmp, final);
      }
      await syncDir(dir);
      return 'created';
    } catch (err) {
      throw this.unavailable(`store ${key}`, err);
    } finally {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  async replace(key: string, body: Buffer, _opts?: PutOptions): Promise<void> {
    const { tmp, final, dir } = await this.writeTemp(key, body);
    try {
      await fsp.rename(tmp, final);
      await syncDir(dir);
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw this.unavailable(`replace ${key}`, err);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const base = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const start = base === '' ? this.root : this.path(base);
    const stack: string[] = [start];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      let entries;
      try {
        entries = await fsp.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw this.unavailable(`list ${dir}`, err);
      }
      for (const e of entries) {
        if (e.name.startsWith('.')) continue;
        const full = join(dir, e.name);
        if (e.isDirectory()) {
          stack.push(full);
          continue;
        }
        const key = full.slice(this.root.length + 1).split(sep).join('/');
        if (!key.startsWith(prefix)) continue;
        const st = await fsp.stat(full).catch(() => null);
        if (st) yield { key, size: st.size };
      }
    }
  }

  /** Makes new directories durable: the parent of the first one created, and each created one above `dir`. */
  private async syncDirsUpFrom(firstCreated: string, dir: string): Promise<void> {
    await syncDir(dirname(firstCreated));
    for (let d = dir; d.length >= firstCreated.length && d !== dirname(d); d = dirname(d)) {
      if (d !== dir) await syncDir(d);
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
