/**
 * A thread that unpacks backup chunks for restore (chunk-threads.ts): decompresses a stored
 * chunk, splits its tar entries and checks each against its manifest piece (length and SHA-256),
 * so that this CPU work runs on every core while the main thread reads and writes. Answers with
 * the entries the manifest names, each in a buffer of its own handed over without a copy.
 */
import { parentPort } from 'node:worker_threads';
import { serveRequests } from '../worker-rpc.js';
import type { UnpackRequest, UnpackedChunk } from './chunk-threads.js';
import { unpackChunk } from './chunk-threads.js';

serveRequests<UnpackRequest, UnpackedChunk>(
  parentPort!,
  (q) => unpackChunk(q),
  (r) => r.entries.map((e) => e.data.buffer as ArrayBuffer),
);
