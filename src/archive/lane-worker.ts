/**
 * A lane of a background helper on its own thread (see lanes.ts): runs the jobs it is sent (push
 * through the ordinary pushFile, fetch through the ordinary fetchFile) with its own repository
 * context, and answers each with the result or the error's code and message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config.js';
import { writeSync } from 'node:fs';
import { setPriority } from 'node:os';
import { configureLog, useLogContexts } from '../log.js';
import type { ArchiveContext } from './context.js';
import { openArchiveContext, withCatalog } from './context.js';
import { runJob, type Job } from './lanes.js';
import { serveRequests } from '../worker-rpc.js';

const { cfg, command, logFd, nice } = workerData as { cfg: Config; command: string; logFd?: number; nice?: number };
configureLog({ level: cfg.log_level, format: cfg.log_format, command });
if (nice !== undefined && process.platform === 'linux') {
  // On Linux this thread's priority alone (elsewhere it would be the whole process's).
  try {
    setPriority(0, nice);
  } catch {
    /* it runs at its owner's priority */
  }
}
if (logFd !== undefined) {
  // The helper's log, a descriptor its owner keeps open for as long as this thread runs.
  const here = {
    sink: (line: Buffer) => {
      try {
        writeSync(logFd, line);
      } catch {
        /* the line is lost, not the push */
      }
    },
  };
  useLogContexts(() => here);
}

// A push lane keeps a catalog connection open; a fetch needs none (it opens the catalog
// read-only when it can, as archive-fetch does).
let pushCtx: Promise<ArchiveContext> | undefined;
let fetchCtx: Promise<ArchiveContext> | undefined;

serveRequests<Job, unknown>(parentPort!, (job) =>
  runJob(
    job,
    () => (pushCtx ??= withCatalog(openArchiveContext(cfg))),
    () => (fetchCtx ??= openArchiveContext(cfg)),
  ),
);
