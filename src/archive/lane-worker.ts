/**
 * A lane of a detached helper on its own thread (see lanes.ts): runs the jobs it is sent (push
 * through the ordinary pushFile, fetch through the ordinary fetchFile) with its own repository
 * context, and answers each with the result or the error's code and message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config.js';
import { constants as fsc, openSync, writeSync } from 'node:fs';
import { configureLog, useLogContexts } from '../log.js';
import type { ArchiveContext } from './push.js';
import { openArchiveContext, withCatalog } from './context.js';
import { runJob, type Job } from './lanes.js';
import { serveRequests } from '../worker-rpc.js';

const { cfg, command, logPath } = workerData as { cfg: Config; command: string; logPath?: string };
configureLog({ level: cfg.log_level, format: cfg.log_format, command });
if (logPath !== undefined) {
  // The helper's log, made (private) by whoever runs the helper; lines appended.
  const fd = openSync(logPath, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_NOFOLLOW);
  const here = { sink: (line: Buffer) => void writeSync(fd, line) };
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
