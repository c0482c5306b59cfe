/**
 * Test harness: a local s3rver (fake S3) in a child process, on 127.0.0.1, storing into a
 * temporary directory, with its buckets created at startup.
 *
 * It runs under `node --openssl-legacy-provider` because s3rver's ListObjectsV2 continuation
 * tokens use DES, which OpenSSL 3 only offers through the legacy provider.
 *
 * s3rver knows one account, access key S3RVER / secret S3RVER. It rejects unknown access keys
 * (InvalidAccessKeyId) but does not verify SigV4 signatures, so a wrong secret goes unnoticed.
 *
 * Usage:
 *   const s3 = await startS3rver();            // afterAll: await s3.stop()
 *   spawn('walship', [...], { env: { ...process.env, ...s3.env } });   // subprocesses
 *   Object.assign(process.env, s3.env);        // in this process (the SDK reads credentials from it)
 *   new S3Driver(s3.bucket, 'prefix', s3.config());
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig, type Config } from '../../src/config.js';

export const S3RVER_ACCESS_KEY = 'S3RVER';
export const S3RVER_SECRET_KEY = 'S3RVER';
export const S3RVER_REGION = 'us-east-1';

export interface S3rver {
  /** The first bucket created (default "walship-test"). */
  bucket: string;
  buckets: string[];
  port: number;
  /** http://127.0.0.1:<port> */
  endpoint: string;
  /** Where s3rver keeps its data. */
  dir: string;
  /**
   * Everything a walship process needs to reach this server, to merge into a child's env:
   * credentials for the SDK's default chain and walship's S3 settings.
   */
  env: Record<string, string>;
  /** `s3://<bucket>/<prefix>` */
  repoUrl(prefix?: string, bucket?: string): string;
  /** A resolved walship Config for this server, built from `env` plus setting overrides. */
  config(overrides?: Record<string, string>): Config;
  /** Writes an object directly (unsigned HTTP; s3rver allows it), e.g. to simulate damage. */
  putRaw(key: string, body: Buffer, bucket?: string): Promise<void>;
  /** Deletes an object directly (unsigned HTTP). */
  deleteRaw(key: string, bucket?: string): Promise<void>;
  /** Stops the server (idempotent) and deletes its data unless `keepData`. */
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

export interface StartOptions {
  buckets?: string[];
  /** A fixed port (e.g. to bring a server back where a stopped one was); default: any free port. */
  port?: number;
  /** Reuse a data directory (from a stopped server with keepData). */
  dir?: string;
}

// Runs in the child: starts s3rver, prints {"port":N}, and exits when told to or when the
// parent goes away (its stdin closes), so a crashed test run leaves no server behind.
const CHILD = `
const S3rver = require(process.env.S3RVER_MAIN);
const [dir, port, buckets] = process.argv.slice(1);
const server = new S3rver({
  directory: dir, address: '127.0.0.1', port: Number(port), silent: true,
  configureBuckets: JSON.parse(buckets).map((name) => ({ name })),
});
server.run().then(
  (addr) => process.stdout.write(JSON.stringify({ port: addr.port }) + '\\n'),
  (err) => { process.stderr.write(String(err && err.stack || err) + '\\n'); process.exit(1); },
);
const quit = () => {
  // Drop the clients' keep-alive connections, or close() would wait for them.
  if (server.httpServer) server.httpServer.closeAllConnections();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', quit);
process.stdin.on('end', quit);
process.stdin.resume();
`;

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export async function startS3rver(opts: StartOptions = {}): Promise<S3rver> {
  const buckets = opts.buckets ?? ['walship-test'];
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'walship-s3rver-'));
  const main = createRequire(import.meta.url).resolve('s3rver');
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '-e', CHILD, dir, String(opts.port ?? 0), JSON.stringify(buckets)],
    { env: { ...process.env, S3RVER_MAIN: main }, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  live.add(child);
  child.once('exit', () => live.delete(child));

  let port: number;
  try {
    port = await readPort(child);
  } catch (err) {
    child.kill('SIGKILL');
    if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    AWS_ACCESS_KEY_ID: S3RVER_ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: S3RVER_SECRET_KEY,
    // Empty = unset for the SDK: a developer's AWS_PROFILE would otherwise win over the keys
    // above, and a session token would be sent along with them.
    AWS_PROFILE: '',
    AWS_SESSION_TOKEN: '',
    WALSHIP_S3_ENDPOINT: endpoint,
    WALSHIP_S3_FORCE_PATH_STYLE: 'on',
    WALSHIP_S3_REGION: S3RVER_REGION,
  };
  let stopped: Promise<void> | undefined;
  const stop = (o: { keepData?: boolean } = {}): Promise<void> =>
    (stopped ??= (async () => {
      await stopChild(child);
      if (!o.keepData) rmSync(dir, { recursive: true, force: true });
    })());

  return {
    bucket: buckets[0]!,
    buckets,
    port,
    endpoint,
    dir,
    env,
    repoUrl: (prefix = '', bucket = buckets[0]!) => `s3://${bucket}${prefix ? `/${prefix}` : ''}`,
    // An empty config file (/dev/null) keeps a machine's /etc/walship/walship.conf out of the tests.
    config: (overrides = {}) => resolveConfig({ flags: overrides, env: { ...env }, configPath: '/dev/null' }),
    putRaw: (key, body, bucket = buckets[0]!) => raw('PUT', `${endpoint}/${bucket}/${key}`, body),
    deleteRaw: (key, bucket = buckets[0]!) => raw('DELETE', `${endpoint}/${bucket}/${key}`),
    stop,
  };
}

async function raw(method: string, url: string, body?: Buffer): Promise<void> {
  const res = await fetch(url, { method, body: body ? new Uint8Array(body) : undefined });
  if (!res.ok) throw new Error(`${method} ${url}: HTTP ${res.status} ${await res.text()}`);
}

/** Waits for the child's {"port":N} line; fails with its stderr if it exits first. */
function readPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`s3rver did not start within 20 s: ${err.trim()}`)), 20_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited with code ${code} before listening: ${err.trim()}`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

export type ProxyMode = 'forward' | 'blackhole' | 'http503' | 'reset' | 'slow' | 'cut';

export interface TcpProxy {
  port: number;
  endpoint: string;
  /** Connections accepted so far. */
  connections: number;
  /** Request lines seen on forwarded connections, e.g. "PUT /bucket/key?partNumber=1&uploadId=..". */
  requests: string[];
  close(): Promise<void>;
}

const SLOW_DOWN_BODY =
  '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';

/**
 * A loopback TCP proxy for fault tests. `mode(n)` decides what the n-th connection (0-based) gets:
 * forward = piped to 127.0.0.1:`target` (request lines recorded), blackhole = accepted and never
 * answered, http503 = one "503 SlowDown" response, then the connection is closed, reset = the
 * request is read and the connection reset (TCP RST) `resetAfterMs` later, slow = forwarded with
 * every chunk from the client held back `delayMs`, cut = forwarded until `cutAfterBytes` of the
 * answer have passed, then the connection reset (a body that breaks off). `port` fixes
 * the listening port (e.g. to bring an endpoint "back" where nothing listened).
 */
export async function startTcpProxy(opts: { target?: number; mode: (n: number) => ProxyMode; port?: number; resetAfterMs?: number; delayMs?: number; cutAfterBytes?: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const proxy: TcpProxy = {
    port: 0,
    endpoint: '',
    connections: 0,
    requests: [],
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = createServer((client) => {
    const mode = opts.mode(proxy.connections++);
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (mode === 'blackhole') {
      client.resume();
    } else if (mode === 'reset') {
      client.once('data', () => setTimeout(() => client.resetAndDestroy(), opts.resetAfterMs ?? 0));
    } else if (mode === 'http503') {
      client.once('data', () => {
        client.end(
          `HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: ${SLOW_DOWN_BODY.length}\r\nConnection: close\r\n\r\n${SLOW_DOWN_BODY}`,
        );
      });
    } else {
      const upstream = connect(opts.target!, '127.0.0.1');
      sockets.add(upstream);
      upstream.on('close', () => sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('data', (d: Buffer) => {
        for (const m of d.toString('latin1').matchAll(/^(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP\/1\.1\r$/gm)) {
          proxy.requests.push(`${m[1]} ${m[2]}`);
        }
      });
      if (mode === 'slow') {
        client.on('data', (d: Buffer) => {
          client.pause();
          setTimeout(() => {
            upstream.write(d);
            client.resume();
          }, opts.delayMs ?? 50);
        });
        client.on('end', () => setTimeout(() => upstream.end(), opts.delayMs ?? 50));
        upstream.pipe(client);
      } else if (mode === 'cut') {
        client.pipe(upstream);
        let passed = 0;
        upstream.on('data', (d: Buffer) => {
          const room = (opts.cutAfterBytes ?? 0) - passed;
          passed += d.length;
          if (room > d.length) return void client.write(d);
          client.write(d.subarray(0, Math.max(0, room)), () => client.resetAndDestroy());
          upstream.destroy();
        });
      } else {
        client.pipe(upstream).pipe(client);
      }
    }
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  proxy.port = (server.address() as AddressInfo).port;
  proxy.endpoint = `http://127.0.0.1:${proxy.port}`;
  return proxy;
}

/** A loopback port nothing listens on (free at the time of the call). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
