/**
 * Who compresses a pushed file: the agent's compression thread gives the very bytes the calling
 * thread would (so an object does not depend on who pushed it), reads the caller's shared buffer
 * as it is, hands its one kept buffer out again only once given back, and leaves the work to the
 * calling thread once it is gone. The thread runs the built code (dist/), as the agent does.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { decompress } from 'zstd-napi';

type Encoder = typeof import('../src/archive/body-encoder.js');
const dist = '../dist/archive/body-encoder.js';
const load = async (): Promise<Encoder> => (await import(dist)) as Encoder;

/** 4 MiB that compress somewhat: runs of text with random bytes between them. */
function sample(): Buffer {
  const parts: Buffer[] = [];
  for (let n = 0; n < 4 << 20; ) {
    const p = n % 3 === 0 ? randomBytes(512) : Buffer.from('INSERT INTO pgbench_history VALUES (1, 2, 3, 4, now());'.repeat(40));
    parts.push(p);
    n += p.length;
  }
  return Buffer.concat(parts).subarray(0, 4 << 20);
}

describe('body encoder', () => {
  it('the thread gives the same body as the calling thread, from shared memory', async () => {
    const { inlineEncoder, startEncodeThread } = await load();
    const thread = await startEncodeThread();
    try {
      const data = sample();
      const raw = thread.alloc(data.length);
      expect(raw.buffer).toBeInstanceOf(SharedArrayBuffer);
      data.copy(raw);
      const [a, b] = await Promise.all([thread.encode(raw, 1), inlineEncoder.encode(data, 1)]);
      expect(a.bodySha256).toBe(b.bodySha256);
      expect(Buffer.compare(a.body, b.body)).toBe(0);
      expect(Buffer.compare(decompress(a.body), data)).toBe(0);
    } finally {
      await thread.close();
    }
  });

  it('keeps one buffer, handed out again only after it is given back', async () => {
    const { startEncodeThread } = await load();
    const thread = await startEncodeThread();
    try {
      const first = thread.alloc(1 << 20);
      const second = thread.alloc(1 << 20);
      expect(second.buffer).not.toBe(first.buffer);
      thread.release(first);
      expect(thread.alloc(1 << 16).buffer).not.toBe(first.buffer); // another size: a new one, and the kept one stays
      expect(thread.alloc(1 << 20).buffer).toBe(first.buffer);
      expect(thread.alloc(1 << 20).buffer).not.toBe(first.buffer); // taken: not handed out twice
    } finally {
      await thread.close();
    }
  });

  it('leaves the work to the calling thread once its thread is gone', async () => {
    const { startEncodeThread } = await load();
    const thread = await startEncodeThread();
    await thread.close();
    const data = sample();
    const raw = thread.alloc(data.length);
    data.copy(raw);
    const r = await thread.encode(raw, 1);
    expect(Buffer.compare(decompress(r.body), data)).toBe(0);
  });
});
