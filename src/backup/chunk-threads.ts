/**
 * Restore's chunk threads: a stored chunk goes to one of a few worker threads (chunk-worker.ts)
 * to be decompressed, split and checked; the entries come back checked. One thread per chunk in
 * flight, up to one per core.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { workerClient } from '../worker-rpc.js';
import { checkPiece, entriesOf, pieceKey, type PieceRef } from './read.js';

export interface UnpackRequest {
  id: string;
  chunk: string;
  body: Uint8Array;
  /** The manifest's pieces of this chunk, by pieceKey. */
  pieces: [string, PieceRef][];
  /** What the error says happens next ("restore stopped"). */
  then: string;
}

export interface UnpackedChunk {
  /** The entries the manifest names, in tar order, each checked; `data` owns its whole buffer. */
  entries: { entry: string; data: Uint8Array; ref: PieceRef }[];
  raw: number;
}

/** The work itself (on a chunk thread, or on this one). */
export async function unpackChunk(q: UnpackRequest): Promise<UnpackedChunk> {
  const pieces = new Map(q.pieces);
  const entries: UnpackedChunk['entries'] = [];
  const body = Buffer.from(q.body.buffer, q.body.byteOffset, q.body.byteLength);
  const raw = await entriesOf(q.id, q.chunk, body, async (entry, data) => {
    const ref = pieces.get(pieceKey(q.chunk, entry));
    if (!ref) return; // backup_label / tablespace_map: restore writes them from backup.json
    checkPiece(q.id, q.chunk, ref, data, q.then);
    entries.push({ entry, data, ref });
  });
  return { entries, raw };
}

export interface ChunkThreads {
  unpack(q: UnpackRequest): Promise<UnpackedChunk>;
  close(): Promise<void>;
}

/** Up to `n` chunk threads (never more than the cores); with one core, the work runs on this thread. */
export async function startChunkThreads(n: number): Promise<ChunkThreads> {
  const count = Math.min(n, availableParallelism());
  if (count <= 1) return { unpack: unpackChunk, close: async () => undefined };
  const { Worker } = await import('node:worker_threads');
  const workers: Worker[] = [];
  const clients: { call(q: UnpackRequest): Promise<UnpackedChunk> }[] = [];
  for (let i = 0; i < count; i++) {
    const w = new Worker(new URL('../backup/chunk-worker.js', import.meta.url), { stdout: false, stderr: false });
    workers.push(w);
    clients.push(workerClient<UnpackRequest, UnpackedChunk>(w, 'restore thread'));
  }
  let next = 0;
  return {
    unpack: (q) => clients[next++ % clients.length]!.call(q),
    close: async () => {
      await Promise.all(workers.map((w) => w.terminate().catch(() => undefined)));
    },
  };
}
