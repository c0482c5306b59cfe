/**
 * Lanes of the detached helpers (the pusher, the prefetcher): their CPU work (push: validation,
 * scan, checksum, zstd; fetch: zstd, checksum) runs on the main thread and on a worker thread
 * (`lane-worker.ts`) per further core, each with its own repository context, so that files in
 * flight are worked on in parallel and not one at a time on the main thread.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { Config } from '../config.js';
import { workerClient } from '../worker-rpc.js';
import { logger } from '../log.js';
import type { ArchiveContext } from './context.js';
import type { PushResult } from './push.js';
import type { FetchResult } from './fetch.js';

type FetchContext = Omit<ArchiveContext, 'compressLevel'>;
export type Job = { op: 'push'; path: string; inOrder?: string } | { op: 'fetch'; name: string; dest: string };
type ResultOf<J extends Job> = J extends { op: 'push' } ? PushResult : FetchResult;
export type Outcome<T> = { ok: true; result: T } | { ok: false; error: unknown };

export interface Lane {
  run<J extends Job>(job: J): Promise<Outcome<ResultOf<J>>>;
  close(): Promise<void>;
}

/** Runs a job in this thread: push with `pushCtx` (catalog kept open), fetch with `fetchCtx`. */
export async function runJob(job: Job, pushCtx: () => Promise<ArchiveContext>, fetchCtx: () => Promise<FetchContext>): Promise<PushResult | FetchResult> {
  if (job.op === 'push') return (await import('./push.js')).pushFile(await pushCtx(), job.path, { inOrder: job.inOrder });
  return (await import('./fetch.js')).fetchFile(await fetchCtx(), job.name, job.dest);
}

function mainLane(pushCtx: () => Promise<ArchiveContext>, fetchCtx: () => Promise<FetchContext>): Lane {
  return {
    async run(job) {
      try {
        return { ok: true, result: (await runJob(job, pushCtx, fetchCtx)) as never };
      } catch (error) {
        return { ok: false, error };
      }
    },
    close: async () => undefined,
  };
}

async function workerLane(cfg: Config, command: string, logFd?: number, nice?: number): Promise<Lane> {
  const { Worker } = await import('node:worker_threads');
  const worker: Worker = new Worker(new URL('./lane-worker.js', import.meta.url), {
    workerData: { cfg, command, logFd, nice },
    stdout: false,
    stderr: false,
  });
  worker.unref();
  const client = workerClient<Job, never>(worker, 'worker thread');
  return {
    run: (job) => client.call(job).then(
      (result) => ({ ok: true, result }),
      (error: unknown) => ({ ok: false, error }),
    ),
    async close() {
      await worker.terminate().catch(() => undefined);
    },
  };
}

/**
 * Lanes for up to `inFlight` jobs at once: one per core (at most one per job), and how many jobs
 * each takes at once; the first on this thread unless `onThisThread` is false (then all on worker
 * threads, this thread as the last resort). A worker that cannot start leaves its jobs to the
 * other lanes. `logFd`: the workers write their lines there rather than to stderr (kept open by
 * the caller until the lanes are closed). `nice`: each worker thread lowers its own priority to
 * it (Linux: a thread's own; the other threads keep theirs).
 */
export async function openLanes(
  cfg: Config,
  command: string,
  inFlight: number,
  pushCtx: () => Promise<ArchiveContext>,
  fetchCtx: () => Promise<FetchContext>,
  onThisThread = true,
  logFd?: number,
  nice?: number,
): Promise<{ lanes: Lane[]; perLane: number }> {
  const threads = Math.max(1, Math.min(inFlight, availableParallelism()));
  const lanes: Lane[] = onThisThread ? [mainLane(pushCtx, fetchCtx)] : [];
  for (let i = lanes.length; i < threads; i++) {
    try {
      lanes.push(await workerLane(cfg, command, logFd, nice));
    } catch (err) {
      logger.debug('worker thread unavailable', { error: (err as Error).message });
    }
  }
  if (lanes.length === 0) lanes.push(mainLane(pushCtx, fetchCtx));
  return { lanes, perLane: Math.max(1, Math.ceil(inFlight / lanes.length)) };
}
