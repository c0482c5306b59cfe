/**
 * A thread that verifies WAL objects and backup chunks (checks.ts) with its own storage driver,
 * so that verify's CPU work (zstd, the records' CRCs, the scan, the pieces' SHA-256) uses every core. Started by verify.ts with the
 * call's settings and the repository's identity; answers each row with the check's result, or
 * the error's code and message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { requireRepo, type Config } from '../config.js';
import { asWalshipError } from '../errors.js';
import { configureLog } from '../log.js';
import type { RepoIdentity } from '../archive/identity.js';
import { openStorage } from '../storage/open.js';
import type { StorageDriver } from '../storage/driver.js';
import { checkChunk, checkWalObject, type CheckJob } from './checks.js';

const { cfg, identity } = workerData as { cfg: Config; identity: RepoIdentity };
configureLog({ level: cfg.log_level, format: cfg.log_format, command: 'verify' });
let storage: Promise<StorageDriver> | undefined;

parentPort!.on('message', async (m: { id: number; job: CheckJob }) => {
  try {
    const s = await (storage ??= openStorage(requireRepo(cfg), cfg));
    const j = m.job;
    const result = j.kind === 'wal' ? await checkWalObject(s, j.row, identity) : await checkChunk(s, j.backup, j.chunk, new Map(j.pieces));
    parentPort!.postMessage({ id: m.id, ok: true, result });
  } catch (err) {
    const we = asWalshipError(err);
    parentPort!.postMessage({ id: m.id, ok: false, code: we.code, message: we.message });
  }
});
