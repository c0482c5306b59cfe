/**
 * A thread that verifies WAL objects and backup chunks (checks.ts) with its own storage driver,
 * so that verify's CPU work (zstd, the records' CRCs, the scan, the pieces' SHA-256) uses every core. Started by verify.ts with the
 * call's settings and the repository's identity; answers each row with the check's result, or
 * the error's code and message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { requireRepo, type Config } from '../config.js';
import { serveRequests } from '../worker-rpc.js';
import { configureLog } from '../log.js';
import type { RepoIdentity } from '../archive/identity.js';
import { openStorage } from '../storage/open.js';
import type { StorageDriver } from '../storage/driver.js';
import { runCheckJob, type CheckJob, type ChunkCheck, type WalCheck } from './checks.js';

const { cfg, identity } = workerData as { cfg: Config; identity: RepoIdentity };
configureLog({ level: cfg.log_level, format: cfg.log_format, command: 'verify' });
let storage: Promise<StorageDriver> | undefined;

serveRequests<CheckJob, WalCheck | ChunkCheck>(parentPort!, async (j) => runCheckJob(await (storage ??= openStorage(requireRepo(cfg), cfg)), identity, j));
