/**
 * Push read-ahead: archive-push for one segment also pushes the next `.ready` segments, so that
 * PostgreSQL's later calls for them return at once.
 *
 * PostgreSQL runs archive_command once per file and waits for it, so a backlog is archived one
 * process start at a time. When called for segment N, walship lists pg_wal/archive_status, takes
 * up to `push_readahead` other `.ready` segments (the ones PostgreSQL will ask for next, in its
 * order) and pushes them together with N, each through the ordinary pushFile (same validation,
 * scan, storage and catalog writes), on a few threads at once (bounded memory: one file per
 * lane in flight). Each one pushed is recorded, durably and before the call returns, in a small
 * state directory next to the catalog (`<catalog>.readahead/<name>`: repository, directory,
 * device, inode, size, mtime, ctime, SHA-256). PostgreSQL's later call for that file checks the
 * record against a fresh stat of the file; when everything matches it returns 0 without reading
 * the file or touching the repository, else it drops the record and pushes normally.
 *
 * Never touched: PostgreSQL's own files (archive_status is only listed). A read-ahead push that
 * fails is logged and forgotten; only N's own push decides the exit code. Timeline history and
 * backup history files, and `.partial` segments, are never read ahead: they are pushed when
 * PostgreSQL asks, as before.
 */
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { mkdir, open, readdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import type { Config } from '../config.js';
import { WalshipError, asWalshipError, type ErrorCode } from '../errors.js';
import { logger } from '../log.js';
import { parseWalFileName } from '../wal/names.js';
import type { ArchiveContext, PushResult } from './push.js';

/** After this long, no further read-ahead push is started (the call for N must not linger). */
const READAHEAD_BUDGET_MS = 20_000;
/** Most files in flight at once, whatever push_readahead says (each holds ~2x its size in memory). */
const MAX_IN_FLIGHT = 4;
const SEGMENT_READY_RE = /^([0-9A-F]{24})\.ready$/;

export interface PushRecord {
  format: 1;
  name: string;
  /** Canonical repository URL. */
  repo: string;
  /** Real path of the directory the file was pushed from. */
  dir: string;
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
  sha256: string;
  pushedAt: string;
}

/** Where the done-records live: next to the catalog, one small file per segment. */
export function readaheadStateDir(catalogPath: string): string {
  return `${catalogPath}.readahead`;
}

function fingerprint(st: BigIntStats): Pick<PushRecord, 'dev' | 'ino' | 'size' | 'mtimeNs' | 'ctimeNs'> {
  return { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
}

function sameFingerprint(a: BigIntStats, b: BigIntStats): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

async function statOrNull(path: string): Promise<BigIntStats | null> {
  try {
    return await stat(path, { bigint: true });
  } catch {
    return null;
  }
}

async function readRecord(path: string): Promise<PushRecord | null> {
  try {
    const rec = JSON.parse(await readFile(path, 'utf8')) as PushRecord;
    return rec && rec.format === 1 && typeof rec.name === 'string' ? rec : null;
  } catch {
    return null;
  }
}

/**
 * Whether a read-ahead record proves `path` was archived as it is now: same repository, same
 * directory, and the file's device, inode, size, mtime and ctime unchanged since it was pushed.
 */
export function recordMatches(rec: PushRecord, st: BigIntStats, repo: string, dir: string, name: string): boolean {
  const fp = fingerprint(st);
  return (
    rec.name === name &&
    rec.repo === repo &&
    rec.dir === dir &&
    rec.dev === fp.dev &&
    rec.ino === fp.ino &&
    rec.size === fp.size &&
    rec.mtimeNs === fp.mtimeNs &&
    rec.ctimeNs === fp.ctimeNs
  );
}

async function writeRecord(stateDir: string, rec: PushRecord): Promise<void> {
  const tmp = join(stateDir, `.${rec.name}.${process.pid}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(rec) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(stateDir, rec.name));
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

type Job = { path: string; name: string; main: boolean };
type Outcome = { ok: true; result: PushResult } | { ok: false; error: unknown };

/** A lane pushes one file at a time: the main thread, or a worker thread with its own context. */
interface Lane {
  push(path: string): Promise<Outcome>;
  close(): Promise<void>;
}

function mainLane(getCtx: () => Promise<ArchiveContext>): Lane {
  return {
    async push(path) {
      try {
        const { pushFile } = await import('./push.js');
        return { ok: true, result: await pushFile(await getCtx(), path) };
      } catch (error) {
        return { ok: false, error };
      }
    },
    close: async () => undefined,
  };
}

async function workerLane(cfg: Config): Promise<Lane> {
  const { Worker } = await import('node:worker_threads');
  const worker: Worker = new Worker(new URL('./readahead-worker.js', import.meta.url), {
    workerData: { cfg },
    stdout: false,
    stderr: false,
  });
  worker.unref();
  let seq = 0;
  const waiting = new Map<number, (o: Outcome) => void>();
  let dead: unknown = null;
  const failAll = (err: unknown) => {
    dead = err;
    for (const resolve of waiting.values()) resolve({ ok: false, error: err });
    waiting.clear();
  };
  worker.on('message', (m: { id: number; ok: boolean; result?: PushResult; code?: string; message?: string }) => {
    const resolve = waiting.get(m.id);
    if (!resolve) return;
    waiting.delete(m.id);
    if (m.ok) resolve({ ok: true, result: m.result! });
    else resolve({ ok: false, error: new WalshipError(m.code as ErrorCode, m.message ?? 'read-ahead push failed') });
  });
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new Error(`read-ahead worker exited (${code})`)));
  return {
    push(path) {
      if (dead) return Promise.resolve({ ok: false, error: dead });
      return new Promise((resolve) => {
        const id = ++seq;
        waiting.set(id, resolve);
        worker.postMessage({ id, path });
      });
    },
    async close() {
      if (!dead) await worker.terminate().catch(() => undefined);
    },
  };
}

/**
 * The segments to read ahead: other `.ready` segments in PostgreSQL's order (those after N
 * first), without a done-record yet, at most `limit`. Also drops done-records whose file is no
 * longer `.ready` (PostgreSQL has marked it done, or it is gone), so the state stays small.
 */
async function pickReadahead(walDir: string, name: string, limit: number, stateDir: string): Promise<string[]> {
  let status: string[];
  try {
    status = await readdir(join(walDir, 'archive_status'));
  } catch {
    return [];
  }
  const ready = new Set<string>();
  for (const e of status) {
    const m = SEGMENT_READY_RE.exec(e);
    if (m && m[1] !== name) ready.add(m[1]!);
  }
  let recorded: string[] = [];
  try {
    recorded = await readdir(stateDir);
  } catch {
    /* no state yet */
  }
  const done = new Set<string>();
  for (const r of recorded) {
    if (r.startsWith('.')) {
      // A temporary file left by a killed call.
      if (r.endsWith('.tmp')) await rm(join(stateDir, r), { force: true }).catch(() => undefined);
      continue;
    }
    if (ready.has(r)) done.add(r);
    else if (r !== name) await rm(join(stateDir, r), { force: true }).catch(() => undefined);
  }
  const sorted = [...ready].filter((n) => !done.has(n)).sort();
  const after = sorted.filter((n) => n > name);
  const before = sorted.filter((n) => n < name);
  return [...after, ...before].slice(0, limit);
}

/**
 * archive-push with read-ahead. `makeCtx` opens the repository lazily: a call answered from a
 * done-record never loads a storage driver (nor the S3 SDK).
 */
export async function archivePushWithReadahead(cfg: Config, path: string, makeCtx: () => Promise<ArchiveContext>): Promise<PushResult | null> {
  const name = basename(path);
  const file = parseWalFileName(name);
  // push.js (validation, scanner, catalog, zstd) is loaded only by calls that push.
  const pushOne = async (ctx: ArchiveContext, p: string) => (await import('./push.js')).pushFile(ctx, p);
  if (cfg.push_readahead <= 0 || file?.kind !== 'segment') return pushOne(await makeCtx(), path);

  const { parseRepoUrl } = await import('../storage/open.js');
  const { requireRepo } = await import('../config.js');
  const repo = parseRepoUrl(requireRepo(cfg)).canonical;
  const stateDir = readaheadStateDir(cfg.catalog);
  const walDir = dirname(path);
  let realDir: string | null = null;
  try {
    realDir = await realpath(walDir);
  } catch {
    /* pushFile reports an unreadable file */
  }

  // 1. Answered by a done-record?
  const recPath = join(stateDir, name);
  const rec = await readRecord(recPath);
  if (rec) {
    const st = await statOrNull(path);
    await rm(recPath, { force: true }).catch(() => undefined);
    if (st && realDir !== null && recordMatches(rec, st, repo, realDir, name)) {
      logger.info('archived earlier by read-ahead', { file: name, sha256: rec.sha256.slice(0, 16) });
      return null;
    }
    logger.info('file changed since read-ahead pushed it (or moved); pushing it again', { file: name });
  }

  // 2. Push N, and read ahead.
  const others = realDir === null ? [] : await pickReadahead(walDir, name, cfg.push_readahead, stateDir);
  if (others.length === 0) return pushOne(await makeCtx(), path);

  const started = Date.now();
  const jobs: Job[] = [{ path, name, main: true }, ...others.map((n) => ({ path: join(walDir, n), name: n, main: false }))];
  const inFlight = Math.min(jobs.length, MAX_IN_FLIGHT);
  const isS3 = repo.startsWith('s3://');
  // Filesystem pushes are CPU-bound (scan, checksum, zstd): one lane per core. S3 pushes wait on
  // the network: concurrent requests on the main thread, no worker paying the SDK's load time.
  const threads = isS3 ? 1 : Math.max(1, Math.min(inFlight, availableParallelism()));
  const perLane = Math.max(1, Math.ceil(inFlight / threads));

  let ctxPromise: Promise<ArchiveContext> | undefined;
  const getCtx = () => (ctxPromise ??= makeCtx());
  const lanes: Lane[] = [mainLane(getCtx)];
  // Workers start in the background: the main lane begins with N at once.
  const workerLanes = Array.from({ length: threads - 1 }, () =>
    workerLane(cfg).catch((err) => {
      logger.debug('read-ahead worker unavailable', { error: (err as Error).message });
      return null;
    }),
  );

  await mkdir(stateDir, { recursive: true, mode: 0o700 }).catch(() => undefined);
  let queue = 0;
  let mainOutcome: Outcome | undefined;
  let recorded = 0;
  let pushedAhead = 0;

  const runJob = async (lane: Lane, job: Job): Promise<void> => {
    const before = job.main ? null : await statOrNull(job.path);
    const outcome = await lane.push(job.path);
    if (job.main) {
      mainOutcome = outcome;
      return;
    }
    if (!outcome.ok) {
      const we = asWalshipError(outcome.error);
      logger.warn('read-ahead push failed; PostgreSQL will push this file itself', { file: job.name, error: we.message, code: we.code });
      return;
    }
    pushedAhead++;
    const after = await statOrNull(job.path);
    if (!before || !after || !sameFingerprint(before, after) || realDir === null) return;
    try {
      await writeRecord(stateDir, {
        format: 1,
        name: job.name,
        repo,
        dir: realDir,
        ...fingerprint(after),
        sha256: outcome.result.sha256,
        pushedAt: new Date().toISOString(),
      });
      recorded++;
    } catch (err) {
      logger.warn('cannot record a read-ahead push; PostgreSQL will push the file again', { file: job.name, error: (err as Error).message });
    }
  };

  const next = (): Job | undefined => {
    while (queue < jobs.length) {
      const job = jobs[queue++]!;
      if (job.main || Date.now() - started < READAHEAD_BUDGET_MS) return job;
    }
    return undefined;
  };
  const drive = async (lane: Lane): Promise<void> => {
    for (let job = next(); job; job = next()) await runJob(lane, job);
  };
  const runners: Promise<void>[] = [];
  for (let i = 0; i < perLane; i++) runners.push(drive(lanes[0]!));
  const extra = await Promise.all(
    workerLanes.map(async (p) => {
      const lane = await p;
      if (!lane) return;
      lanes.push(lane);
      const rs: Promise<void>[] = [];
      for (let i = 0; i < perLane; i++) rs.push(drive(lane));
      await Promise.all(rs);
    }),
  );
  void extra;
  await Promise.all(runners);
  await Promise.all(lanes.map((l) => l.close()));
  if (recorded > 0) await syncDir(stateDir).catch(() => undefined);
  logger.debug('read-ahead finished', { file: name, pushed: pushedAhead, recorded, of: others.length, ms: Date.now() - started });

  if (!mainOutcome) throw new Error('read-ahead lost the main push');
  if (!mainOutcome.ok) throw mainOutcome.error;
  return mainOutcome.result;
}
