/**
 * Requests to a worker thread and their answers: each request carries an id, each answer settles
 * the call with that id. An error inside the worker comes back as its code and message (an Error
 * does not cross threads whole); a worker that fails or exits fails every call still waiting and
 * every later one. Used by the background helpers' lanes (archive/lanes.ts) and by verify's
 * checking threads (verify/verify.ts).
 */
import type { MessagePort, Worker } from 'node:worker_threads';
import { WalshipError, asWalshipError, type ErrorCode } from './errors.js';

type Answer<R> = { id: number; ok: true; result: R } | { id: number; ok: false; code: string; message: string };

/** The calling side: `call(request)` resolves with the worker's result or rejects with its error. */
export function workerClient<Q, R>(worker: Worker, what: string): { call(request: Q): Promise<R> } {
  let seq = 0;
  const waiting = new Map<number, { resolve: (r: R) => void; reject: (e: unknown) => void }>();
  let dead: unknown = null;
  const failAll = (err: unknown) => {
    dead ??= err;
    for (const p of waiting.values()) p.reject(err);
    waiting.clear();
  };
  worker.on('message', (m: Answer<R>) => {
    const p = waiting.get(m.id);
    if (!p) return;
    waiting.delete(m.id);
    if (m.ok) p.resolve(m.result);
    else p.reject(new WalshipError(m.code as ErrorCode, m.message || `${what} failed`));
  });
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new WalshipError('INTERNAL', `${what} exited (${code})`)));
  return {
    call(request) {
      if (dead) return Promise.reject(dead);
      return new Promise((resolve, reject) => {
        const id = ++seq;
        waiting.set(id, { resolve, reject });
        worker.postMessage({ id, job: request });
      });
    },
  };
}

/**
 * The worker's side: answers each request on `port` (the worker's parentPort) with `handle`;
 * `transfer` names buffers of the result handed over without a copy (they must own their memory).
 */
export function serveRequests<Q, R>(port: MessagePort, handle: (request: Q) => Promise<R>, transfer?: (result: R) => ArrayBuffer[]): void {
  port.on('message', async (m: { id: number; job: Q }) => {
    try {
      const result = await handle(m.job);
      port.postMessage({ id: m.id, ok: true, result } satisfies Answer<R>, transfer?.(result) ?? []);
    } catch (err) {
      const we = asWalshipError(err);
      port.postMessage({ id: m.id, ok: false, code: we.code, message: we.message } satisfies Answer<R>);
    }
  });
}
