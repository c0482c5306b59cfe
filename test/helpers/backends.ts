/**
 * The repository backends every archive suite runs against. Each gives the --repo URL and the
 * environment a walship process (run by the tests or by PostgreSQL) needs to reach it.
 */
import { mkdirSync, chownSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FsDriver } from '../../src/storage/fs.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { fileNameFromKey } from '../../src/archive/keys.js';
import { pgUser } from './pg.js';
import { startS3rver, type S3rver } from './s3rver.js';
import { S3Driver } from '../../src/storage/s3.js';

export interface RepoBackend {
  name: string;
  setup(workDir: string): Promise<{ repo: string; env: Record<string, string> }>;
  /** A driver on the same repository, for inspecting it directly. */
  driver(): StorageDriver;
  /** The WAL file names stored in the repository. */
  listWalNames(): Promise<string[]>;
  /** Writes an object's bytes behind walship's back (to simulate damage, or plant one), as the cluster's user. */
  overwrite(key: string, body: Buffer): Promise<void>;
  /** Deletes an object behind walship's back. */
  remove(key: string): Promise<void>;
  teardown?(): Promise<void>;
}

async function walNames(d: StorageDriver): Promise<string[]> {
  const out: string[] = [];
  for await (const o of d.list('wal/')) {
    const n = fileNameFromKey(o.key);
    if (n) out.push(n);
  }
  return out;
}

export function fsBackend(): RepoBackend {
  let drv: FsDriver;
  return {
    name: 'filesystem',
    async setup(workDir) {
      const repo = join(workDir, 'repo');
      mkdirSync(repo, { recursive: true });
      chownSync(repo, pgUser().uid, pgUser().gid);
      drv = new FsDriver(repo);
      return { repo, env: {} };
    },
    driver: () => drv,
    listWalNames: () => walNames(drv),
    overwrite: async (key, body) => {
      // A new file (and its directory) as the cluster's user would have written it.
      const path = join(drv.root, key);
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(path, body);
      for (const p of [dirname(path), path]) chownSync(p, pgUser().uid, pgUser().gid);
    },
    remove: async (key) => rmSync(join(drv.root, key)),
  };
}

export function s3Backend(): RepoBackend {
  let s3: S3rver;
  let drv: S3Driver;
  const prefix = 'cluster-a';
  return {
    name: 's3',
    async setup() {
      s3 = await startS3rver();
      // The driver in this process reads credentials from the environment, like walship does.
      Object.assign(process.env, s3.env);
      drv = new S3Driver(s3.bucket, prefix, s3.config());
      return { repo: s3.repoUrl(prefix), env: s3.env };
    },
    driver: () => drv,
    listWalNames: () => walNames(drv),
    overwrite: (key, body) => s3.putRaw(`${prefix}/${key}`, body),
    remove: (key) => s3.deleteRaw(`${prefix}/${key}`),
    teardown: () => s3.stop(),
  };
}

/** Every backend, or those named in WALSHIP_TEST_BACKENDS (e.g. "filesystem"). */
export function repoBackends(): RepoBackend[] {
  const all = [fsBackend(), s3Backend()];
  const only = process.env.WALSHIP_TEST_BACKENDS?.split(',').map((s) => s.trim());
  return only ? all.filter((b) => only.includes(b.name)) : all;
}
