/**
 * Who compresses a pushed file (zstd, then the SHA-256 of the result: an object's body). Inline,
 * on the calling thread, for a call in node; on a thread of its own for the agent, so that the
 * body is compressed while the calling thread scans and checksums the same file: the file is
 * read into shared memory (`alloc`) and handed over without a copy. A thread that dies leaves
 * the work to the calling thread.
 */
import { availableParallelism } from 'node:os';
import { compressBody, type CompressedBody } from './envelope.js';
import { workerClient } from '../worker-rpc.js';
import { logger } from '../log.js';

export interface BodyEncoder {
  /** Whether it compresses beside the calling thread (then a push starts it early; else only once it knows the file is new). */
  readonly parallel: boolean;
  /** A buffer for a file of `size` bytes that `encode` can hand to its thread as it is. */
  alloc(size: number): Buffer;
  /** Gives back a buffer of `alloc`'s that nothing uses any more (its encoding settled). */
  release(buf: Buffer): void;
  encode(raw: Buffer, level: number): Promise<CompressedBody>;
  close(): Promise<void>;
}

/** Buffers larger than a segment's usual sizes are not kept. */
const KEEP_MAX = 64 * 1024 * 1024;

/**
 * Buffers for files of one size, given back when a push is done with them: fresh memory is
 * zeroed or faulted in page by page, and garbage of 16 MiB a file keeps the collector busy, which
 * costs a long-lived pusher a few milliseconds a file. Keeps at most `keep` of at most KEEP_MAX.
 */
function bufferPool(keep: number, fresh: (size: number) => Buffer): Pick<BodyEncoder, 'alloc' | 'release'> {
  const free: Buffer[] = [];
  return {
    alloc(size) {
      const i = free.findIndex((b) => b.length === size);
      return i < 0 ? fresh(size) : free.splice(i, 1)[0]!;
    },
    release(buf) {
      if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength && buf.length <= KEEP_MAX && free.length < keep && !free.includes(buf)) free.push(buf);
    },
  };
}

/** On this thread; as many buffers kept as a pusher lane has files in flight. */
export const inlineEncoder: BodyEncoder = {
  parallel: false,
  ...bufferPool(4, (size) => Buffer.allocUnsafeSlow(size)),
  encode: compressBody,
  close: async () => undefined,
};

export interface EncodeRequest {
  raw: Uint8Array;
  level: number;
}
export interface EncodeAnswer {
  body: Uint8Array;
  bodySha256: string;
}

/** A compression thread (one buffer kept: the agent pushes one file at a time), or the inline encoder on a machine with one core. */
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
  return {
    parallel: true,
    ...bufferPool(1, (size) => Buffer.from(new SharedArrayBuffer(size))),
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
