/**
 * `walship agent`: one long-lived process per data directory that answers its archive-push and
 * archive-fetch calls for the tiny client (src/client/), so that a call costs a connection, not
 * a node start. It runs each call with exactly the code a call in node runs
 * (commands/file-call.ts), one at a time, keeping the repository context (the storage driver,
 * its connections, the loaded modules) open between calls. The background helpers a call it
 * answers starts run in the agent, on worker threads, each with its lines in its own log: the
 * pusher (archive/pusher.ts) and the prefetcher (archive/prefetcher.ts, whose threads run at nice
 * 10 so that recovery's replay wins the CPU; the agent's own thread keeps its priority).
 *
 * It answers only a call whose settings are its own: the same data directory, setting flags,
 * forwarded environment (place.ts) and config file state as the call that started it; any other
 * call is declined and the client runs it in node. A changed config file also makes it exit. It
 * listens in a private directory (only its user can connect: Node has no peer credentials, so
 * the directory's mode is the check on this side; the client checks the agent's uid), and exits
 * after `idleExitMs` without a call it answered (0: never), or when another build is installed.
 *
 * One agent per data directory: the agent is whoever owns the socket's path. A new agent leaves
 * when one answers there; else it takes the path over (a stale socket's). Every second each
 * agent checks that the path is still its socket, and leaves when it is not: of two started at
 * once, the later one stays. `agent.lock` ({pid}, its mtime a heartbeat) tells the calls in node
 * that an agent is alive, so that they do not start another.
 */
import { chmodSync, closeSync, realpathSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Server, Socket } from 'node:net';
import { openAgentContext, openArchiveContext, repoCanonical } from '../archive/context.js';
import { startEncodeThread } from '../archive/body-encoder.js';
import type { ArchiveContext } from '../archive/context.js';
import { HEARTBEAT_MS, heartbeat, openHelperLog, releaseLock } from '../archive/background.js';
import { writeFileAtomic } from '../local/atomic-write.js';
import { privateDir } from '../local/private.js';
import { logger, useLogContexts, type LogContext } from '../log.js';
import type { Config } from '../config.js';
import { failureCode, parseFileCall, settingsFor } from '../commands/file-call.js';
import { AGENT_LOCK, AGENT_SOCKET, AGENT_STARTING, SOCKET_PATH_MAX, agentDir, forwardedEnv } from './place.js';
import { DECLINED, decodeRequest, encodeAnswer, encodeHello, type Request } from './protocol.js';
import { buildId } from './build-id.js';
import { PUSHER_LOG, readaheadStateDir } from '../archive/readahead.js';

/** Whether an agent answers on `path` (its hello) within 300 ms. */
async function answers(path: string): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const c = connect(path);
    const done = (v: boolean) => {
      clearTimeout(t);
      c.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done(false), 300);
    c.once('data', () => done(true));
    c.once('error', () => done(false));
  });
}

export interface AgentOptions {
  pgdata: string;
  /** The setting flags it was started with, `--flag=value` each. */
  flagArgs: string[];
  idleExitMs: number;
  /** The helper the call that started it would have started (agent/start.ts): run at once. */
  helpers?: { pushAhead?: string };
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);
const sameEnv = (a: Record<string, string>, b: Record<string, string>) => sameList(Object.keys(a), Object.keys(b)) && Object.keys(a).every((k) => a[k] === b[k]);

export async function runAgent(opts: AgentOptions, startCfg: Config): Promise<void> {
  const pgdata = realpathSync(opts.pgdata);
  const dir = agentDir(pgdata);
  const socketPath = join(dir, AGENT_SOCKET);
  const id = buildId();
  if (!id) return logger.warn('no build id (dist/build-id): the agent is not started; calls run in node');
  if (socketPath.length > SOCKET_PATH_MAX) return logger.warn('the agent socket path is too long; calls run in node', { path: socketPath });
  const trust = privateDir(dir, { create: true });
  if (trust.state !== 'ok') return logger.warn('the agent directory is not private; calls run in node', { dir, problem: 'reason' in trust ? trust.reason : trust.state });
  if (await answers(socketPath)) return logger.debug('another agent answers on the socket', { dir });
  process.chdir(pgdata);
  const identity = { flagArgs: opts.flagArgs, env: forwardedEnv(process.env), configStamp: JSON.stringify(startCfg.configStamp) };

  const { AsyncLocalStorage } = await import('node:async_hooks');
  const contexts = new AsyncLocalStorage<LogContext>();
  useLogContexts(() => contexts.getStore());
  /**
   * A background helper a call would start detached (the pusher, the prefetcher), run here
   * instead: its work on worker threads, so that this thread stays free for the calls, and its
   * lines in its log as a detached one's are. One at a time per `key` (its pg_wal, its spool).
   */
  const helpers = new Set<string>();
  const runHelper = (key: string, command: string, cfg: Config, logPath: string, run: (logFd: number) => Promise<unknown>) => {
    if (helpers.has(key)) return;
    let log: number;
    try {
      // As a detached helper's; its threads write to it too, and it is closed only once they are
      // gone (the end of `run`).
      log = openHelperLog(logPath);
    } catch (err) {
      return logger.debug(`cannot open the log of ${command}; not started`, { error: (err as Error).message });
    }
    helpers.add(key);
    let closed = false;
    const sink = (line: Buffer) => {
      // A line from work that outlived the helper is dropped: the descriptor's number may be another file's by then.
      if (closed) return;
      try {
        writeSync(log, line);
      } catch {
        /* the line is lost, not the work */
      }
    };
    void contexts.run({ sink, command, level: cfg.log_level, format: cfg.log_format }, () =>
      run(log)
        .catch((err: unknown) => logger.warn(`${command} failed`, { error: (err as Error).message }))
        .finally(() => {
          helpers.delete(key);
          closed = true;
          closeSync(log);
        }),
    );
  };
  const pusherStarter = (cfg: Config) => async (walDir: string, logPath: string) => {
    const { runPusher } = await import('../archive/pusher.js');
    runHelper(`pusher ${walDir}`, 'archive-push-ahead', cfg, logPath, (logFd) => runPusher(cfg, walDir, repoCanonical(cfg), () => openArchiveContext(cfg), { logFd }));
    return true;
  };
  const prefetcherStarter = (cfg: Config) => async (spool: string, name: string, logPath: string) => {
    const { runPrefetcher } = await import('../archive/prefetcher.js');
    const own = { ...cfg, spool_dir: spool };
    runHelper(`prefetcher ${spool}`, 'archive-prefetch', cfg, logPath, (logFd) => runPrefetcher(own, name, () => openArchiveContext(own), { logFd }));
    return true;
  };

  // Its compression thread, started now: the first push it answers does not wait for it.
  const encoder = startEncodeThread();
  let ctx: Promise<ArchiveContext> | null = null;
  const open = (cfg: Config) => () => {
    ctx ??= encoder.then((e) => openAgentContext(cfg, e)).catch((err: unknown) => {
      ctx = null;
      throw err;
    });
    return ctx;
  };

  const { createServer } = await import('node:net');
  let queue: Promise<unknown> = Promise.resolve();
  let idle: NodeJS.Timeout | undefined;
  let server: Server;
  let socketIno = -1;
  const stop = async (why: string) => {
    logger.info(`agent exits: ${why}`, { pgdata });
    clearTimeout(idle);
    server.close();
    // The path may be another agent's socket by now.
    if (statSync(socketPath, { throwIfNoEntry: false })?.ino === socketIno) rmSync(socketPath, { force: true });
    await releaseLock(dir, AGENT_LOCK);
    process.exit(0);
  };
  const touch = () => {
    clearTimeout(idle);
    if (opts.idleExitMs > 0) idle = setTimeout(() => void queue.then(() => stop('idle')), opts.idleExitMs);
  };

  /** One call: answered with its exit code and stderr, or declined. */
  const decline = (why: string) => {
    logger.debug(`declined a call: ${why}; it runs in node`);
    return DECLINED;
  };
  const serve = async (req: Request): Promise<Buffer> => {
    let cwd: string;
    try {
      cwd = realpathSync(req.cwd);
    } catch {
      return decline('its working directory is gone');
    }
    const [name, ...rest] = req.argv;
    if (cwd !== pgdata) return decline(`another working directory (${cwd})`);
    if (name !== 'archive-push' && name !== 'archive-fetch') return decline(`not a per-file command (${name})`);
    let call;
    try {
      call = parseFileCall(name, rest);
    } catch {
      return decline('a bad command line'); // node reports it, as it always does
    }
    if (!call) return decline('a request for help');
    if (!sameList(call.flagArgs, identity.flagArgs)) return decline('other setting flags');
    const env = forwardedEnv(req.env);
    if (!sameEnv(env, identity.env)) {
      const names = [...new Set([...Object.keys(env), ...Object.keys(identity.env)])].filter((k) => env[k] !== identity.env[k]);
      return decline(`another environment (${names.sort().join(', ')})`);
    }
    // The call's lines go back to its client (and only its: the pusher's go to its own log).
    const lines: Buffer[] = [];
    return contexts.run({ sink: (l) => lines.push(l), command: name }, async () => {
      const t0 = process.hrtime.bigint();
      let code = 0;
      let policy: Config['fetch_on_error'] = 'auto';
      try {
        const cfg = settingsFor(name, call.flags, env);
        if (JSON.stringify(cfg.configStamp) !== identity.configStamp) {
          contexts.exit(() => setImmediate(() => void queue.then(() => stop('the config file changed'))));
          return decline('the config file changed');
        }
        policy = cfg.fetch_on_error;
        await call.spec.run(cfg, call.positionals, call.flagArgs, { open: open(cfg), startPusher: pusherStarter(cfg), startPrefetcher: prefetcherStarter(cfg) });
      } catch (err) {
        code = failureCode(err, name, policy, pgdata);
      }
      logger.debug('answered by the agent', { pid: process.pid, code, ms: (Number(process.hrtime.bigint() - t0) / 1e6).toFixed(2) });
      return encodeAnswer(code, Buffer.concat(lines));
    });
  };

  const onConnection = (conn: Socket) => {
    conn.on('error', () => undefined);
    // A new build installed: its clients will not talk to this agent; make way for theirs.
    if (buildId() !== id) {
      conn.destroy();
      void queue.then(() => stop('another build is installed'));
      return;
    }
    conn.write(encodeHello(id));
    let buf = Buffer.alloc(0);
    let taken = false;
    conn.on('data', (d: Buffer) => {
      if (taken) return;
      buf = Buffer.concat([buf, d]);
      let req: Request | null;
      try {
        req = decodeRequest(buf);
      } catch {
        conn.destroy();
        return;
      }
      if (!req) return;
      taken = true;
      const r = req;
      queue = queue.then(async () => {
        const answer = await serve(r).catch(() => DECLINED);
        conn.end(answer);
        // Only answered calls keep it alive: calls it declines have no use for it.
        if (answer !== DECLINED) touch();
      });
    });
  };

  rmSync(socketPath, { force: true });
  server = createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  socketIno = statSync(socketPath, { throwIfNoEntry: false })?.ino ?? -1;
  const mark = () => writeFileAtomic(join(dir, AGENT_LOCK), JSON.stringify({ pgdata, pid: process.pid, startedAt: new Date().toISOString() }));
  await mark();
  rmSync(join(dir, AGENT_STARTING), { force: true });
  logger.info('agent listening', { pgdata, socket: socketPath, build: id });
  touch();
  // What the call that started it handed over: run now, as that call would have run it detached.
  const then = opts.helpers;
  if (then?.pushAhead) void pusherStarter(startCfg)(then.pushAhead, join(readaheadStateDir(startCfg.catalog), PUSHER_LOG));
  const beat = setInterval(() => {
    if (statSync(socketPath, { throwIfNoEntry: false })?.ino !== socketIno) {
      logger.info('agent exits: another agent took the socket over', { pgdata });
      process.exit(0);
    }
    void heartbeat(dir, AGENT_LOCK).then((ours) => (ours ? undefined : mark()));
  }, HEARTBEAT_MS);
  beat.unref();
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void queue.then(() => stop(sig)));
  await new Promise(() => undefined);
}
