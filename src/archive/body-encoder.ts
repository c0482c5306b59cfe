/**
 * Who compresses a pushed file (zstd, then the SHA-256 of the result: an object's body). Inline,
 * on the calling thread, for a call in node; on a thread of its own for the agent, so that the
 * body is compressed while the calling thread scans and checksums the same file: the file is
 * read into shared memory (`alloc`) and handed over without a copy. A thread that dies leaves
 * the work to the calling thread.
 */
import { availableParallelism } from 'node:os';
import { compressBody, type EncodedBody } from './envelope.js';
import { workerClient } from '../worker-rpc.js';
import { logger } from '../log.js';

export interface BodyEncoder {
  /** A buffer for a file of `size` bytes that `encode` can hand to its thread as it is. */
  alloc(size: number): Buffer;
  /** Gives back a buffer of `alloc`'s that nothing uses any more (its encoding settled). */
  release(buf: Buffer): void;
  encode(raw: Buffer, level: number): Promise<EncodedBody>;
  close(): Promise<void>;
}

export const inlineEncoder: BodyEncoder = {
  alloc: (size) => Buffer.allocUnsafe(size),
  release: () => undefined,
  encode: compressBody,
  close: async () => undefined,
};

/**
 * The thread's buffer for the next file: fresh shared memory is zeroed and faulted in page by
 * page, which costs a 16 MiB read a few milliseconds more than the read itself. One buffer is
 * kept (the agent pushes one file at a time), and only of a segment's usual sizes.
 */
const KEEP_MAX = 64 * 1024 * 1024;

export interface EncodeRequest {
  raw: Uint8Array;
  level: number;
}
export interface EncodeAnswer {
  body: Uint8Array;
  bodySha256: string;
}

/** A compression thread, or the inline encoder on a machine with one core. */
export async function startEncodeThread(): Promise<BodyEncoder> {
  if (availableParallelism() < 2) return inlineEncoder;
  const { Worker } = await import('node:worker_threads');
  const worker = new Worker(new URL('./encode-worker.js', import.meta.url), { stdout: false, stderr: false });
  worker.unref();
  let alive = true;
  let closing = false;
  const died = (why: unknown) => {
    if (alive && !closing) logger.warn('the compression thread is gone; pushes compress on the calling thread', { why: String(why) });
    alive = false;
  };
  worker.once('error', died);
  worker.once('exit', died);
  const client = workerClient<EncodeRequest, EncodeAnswer>(worker, 'the compression thread');
  let kept: Buffer | null = null;
  return {
    alloc(size) {
      if (kept?.length !== size) return Buffer.from(new SharedArrayBuffer(size));
      const b = kept;
      kept = null;
      return b;
    },
    release(buf) {
      if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength && buf.length <= KEEP_MAX) kept = buf;
    },
    async encode(raw, level) {
      if (!alive) return compressBody(raw, level);
      try {
        const r = await client.call({ raw, level });
        return { body: Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength), bodySha256: r.bodySha256 };
      } catch (err) {
        if (alive) throw err; // the work failed, not the thread
        return compressBody(raw, level);
      }
    },
    close: async () => {
      closing = true;
      await worker.terminate().catch(() => undefined);
    },
  };
}
