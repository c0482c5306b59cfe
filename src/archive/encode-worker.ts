/**
 * The agent's compression thread (body-encoder.ts): compresses the file it is handed (in shared
 * memory, read by the calling thread) and answers with the body, handed back without a copy.
 */
import { parentPort } from 'node:worker_threads';
import { serveRequests } from '../worker-rpc.js';
import { compressBody } from './envelope.js';
import type { EncodeAnswer, EncodeRequest } from './body-encoder.js';

serveRequests<EncodeRequest, EncodeAnswer>(
  parentPort!,
  async ({ raw, level }) => {
    const { body, bodySha256 } = await compressBody(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), level);
    // Only a buffer that owns its whole memory can be handed over.
    const own = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength ? body : new Uint8Array(body);
    return { body: own, bodySha256 };
  },
  (r) => [r.body.buffer as ArrayBuffer],
);
