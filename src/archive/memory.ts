/**
 * What one file in flight holds in memory while it is pushed or fetched, and how many such files
 * fit in `memory_max` (pure): what the runtime holds whatever the files (RUNTIME: node, its
 * threads' heaps, the catalog) is set aside, and the files in flight share the rest; fewer files
 * go at once when their buffers would not fit, never none. A pusher (on a primary) and a
 * prefetcher (in recovery) each keep within it. The costs are upper bounds of walship's buffers.
 */
import { RAW_CHUNK } from './envelope.js';
import { PIECE, WHOLE_MAX } from './read-pieces.js';

const MiB = 1024 * 1024;
/** zstd's contexts at walship's levels (their windows and tables), with room to spare. */
const ZSTD_CONTEXT = 8 * MiB;
/** Bytes of a large body an S3 upload holds at once: its parts in flight (s3.ts). */
export const S3_SOURCE_PARTS_BYTES = 2 * 16 * MiB;

/** A push of a file of `size` bytes: read whole, the file and its compressed copy; read in pieces, a piece, zstd's context and (to S3) the parts in flight. */
export function pushCost(size: number, s3: boolean): number {
  if (size <= WHOLE_MAX) return 2 * size + ZSTD_CONTEXT;
  return PIECE + 2 * MiB + ZSTD_CONTEXT + (s3 ? S3_SOURCE_PARTS_BYTES : 0);
}

/** A fetch of a file of `size` bytes: its content handed on in pieces of at most RAW_CHUNK, the stream's chunks, zstd's window. */
export function fetchCost(size: number): number {
  return Math.min(size, RAW_CHUNK) + 2 * MiB + ZSTD_CONTEXT;
}

/**
 * What walship's processes hold whatever their files: node, the agent's threads and their heaps,
 * the catalog, the client and calls in node beside it (scripts/bench-memory.mjs measures about
 * 250 MiB on Linux x64 for the agent, its pusher's threads and PostgreSQL's calls together).
 */
export const RUNTIME = 256 * MiB;

/** How many files of `cost` bytes each go at once within `memoryMax` (undefined: no bound): at least 1, at most `wanted`. */
export function filesInFlight(memoryMax: number | undefined, cost: number, wanted: number): number {
  if (memoryMax === undefined) return Math.max(1, wanted);
  return Math.max(1, Math.min(wanted, Math.floor((memoryMax - RUNTIME) / cost)));
}
