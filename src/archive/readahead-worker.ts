/**
 * A lane of the background pusher on its own thread (see pusher.ts): pushes the files it is sent
 * through the ordinary pushFile with its own repository context and catalog connection, and
 * answers each with the result or the error's code and message.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config.js';
import { asWalshipError } from '../errors.js';
import { configureLog } from '../log.js';
import type { ArchiveContext } from './push.js';
import { openArchiveContext, withCatalog } from './context.js';

const { cfg } = workerData as { cfg: Config };
configureLog({ level: cfg.log_level, format: cfg.log_format, command: 'archive-push' });

let ctx: Promise<ArchiveContext> | undefined;
const context = () => withCatalog(openArchiveContext(cfg));

const pushModule = import('./push.js');
parentPort!.on('message', async (m: { id: number; path: string }) => {
  try {
    const { pushFile } = await pushModule;
    const result = await pushFile(await (ctx ??= context()), m.path);
    parentPort!.postMessage({ id: m.id, ok: true, result });
  } catch (err) {
    const we = asWalshipError(err);
    parentPort!.postMessage({ id: m.id, ok: false, code: we.code, message: we.message });
  }
});
