/**
 * S3 driver failure modes against real sockets: a port with nothing listening, an endpoint that
 * accepts and never answers, 503 SlowDown, a body cut off midway, wrong or missing credentials, a
 * missing bucket, and a web server that is not S3. The driver must never turn these into "absent" (null).
 *
 * Timeouts are small (300 ms, 1-2 retries); time bounds are generous upper limits only.
 */
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WalshipError } from '../src/errors.js';
import { S3Driver } from '../src/storage/s3.js';
import { freePort, startS3rver, startTcpProxy, type S3rver } from './helpers/s3rver.js';

const TIMEOUT_MS = 300;
/** Far more than attempts × (timeout + backoff) below, far less than a hang. */
const HANG_BOUND_MS = 15_000;

let s3: S3rver;
const savedEnv = { ...process.env };

beforeAll(async () => {
  s3 = await startS3rver();
  Object.assign(process.env, s3.env);
});
afterAll(async () => {
  await s3?.stop();
  process.env = savedEnv;
});

/** A driver for `endpoint` with a short per-attempt timeout and `retries` retries. */
function driverAt(endpoint: string, retries = 1, bucket = s3.bucket): S3Driver {
  return new S3Driver(bucket, 'faults', s3.config({ s3_endpoint: endpoint, s3_request_timeout: String(TIMEOUT_MS), s3_max_retries: String(retries) }));
}

/** The WalshipError a promise rejects with (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<WalshipError> {
  const r = await p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (r.ok) throw new Error(`expected a failure, got ${JSON.stringify(r.v)}`);
  expect((r.e as Error).name).toBe('WalshipError');
  const msg = (r.e as Error).message;
  expect(msg).not.toContain('\n');
  return r.e as WalshipError;
}

async function drain(it: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of it) {
    /* consume */
  }
}

/** Every read and write operation of the driver, for "all of them fail the same way" checks. */
function operations(d: S3Driver): Record<string, () => Promise<unknown>> {
  return {
    get: () => d.get('wal/x'),
    head: () => d.head('wal/x'),
    getRange: () => d.getRange('wal/x', 0, 8),
    putIfAbsent: () => d.putIfAbsent('wal/x', Buffer.from('data')),
    list: () => drain(d.list('wal/')),
    check: () => d.check(),
  };
}

describe('S3 driver faults', () => {
  it('endpoint down: REPOSITORY_UNAVAILABLE after retries, then works once the endpoint is back', async () => {
    const port = await freePort();
    const d = driverAt(`http://127.0.0.1:${port}`, 2);
    const started = Date.now();
    for (const [op, run] of Object.entries(operations(d))) {
      const err = await failure(run());
      expect(err.code, op).toBe('REPOSITORY_UNAVAILABLE');
      expect(err.message, op).toMatch(/ECONNREFUSED/);
      expect(err.message, op).toContain(`127.0.0.1:${port}`);
      expect(err.message, op).toContain('after 3 attempts');
    }
    expect(Date.now() - started).toBeLessThan(HANG_BOUND_MS);

    // The same driver succeeds once a server listens there again.
    const back = await startS3rver({ port });
    try {
      expect(await d.putIfAbsent('wal/x', Buffer.from('data'))).toBe('created');
      expect(await d.get('wal/x')).toEqual(Buffer.from('data'));
    } finally {
      await back.stop();
    }
  });

  it('an endpoint that never answers: the request timeout fires on every attempt, REPOSITORY_UNAVAILABLE, not null', async () => {
    const proxy = await startTcpProxy({ mode: () => 'blackhole' });
    try {
      const d = driverAt(proxy.endpoint, 1);
      for (const op of ['get', 'head', 'putIfAbsent'] as const) {
        const before = proxy.connections;
        const started = Date.now();
        const err = await failure(operations(d)[op]!());
        const elapsed = Date.now() - started;
        expect(err.code, op).toBe('REPOSITORY_UNAVAILABLE');
        expect(err.message, op).toContain(`s3_request_timeout=${TIMEOUT_MS} ms`);
        // Two attempts (1 retry), each given up after the timeout, neither hanging.
        expect(proxy.connections - before, op).toBe(2);
        expect(elapsed, op).toBeGreaterThanOrEqual(2 * TIMEOUT_MS - 50);
        expect(elapsed, op).toBeLessThan(HANG_BOUND_MS);
      }
    } finally {
      await proxy.close();
    }
  });

  it('a connection reset is reported as a reset, not as a timeout', async () => {
    // The store reads the request and resets the connection well within the request timeout.
    const proxy = await startTcpProxy({ mode: () => 'reset', resetAfterMs: 200 });
    try {
      const d = new S3Driver(s3.bucket, 'faults', s3.config({ s3_endpoint: proxy.endpoint, s3_request_timeout: '30000', s3_max_retries: '1' }));
      for (const op of ['get', 'putIfAbsent'] as const) {
        const err = await failure(operations(d)[op]!());
        expect(err.code, op).toBe('REPOSITORY_UNAVAILABLE');
        expect(err.message, op).toMatch(/the connection to http:\/\/127\.0\.0\.1:\d+ was closed by the other end \(.*ECONNRESET/);
        expect(err.message, op).not.toContain('s3_request_timeout=');
      }
    } finally {
      await proxy.close();
    }
  });

  it('503 SlowDown is retried; a store that keeps answering 503 is REPOSITORY_UNAVAILABLE', async () => {
    // The first connection gets a 503, later ones reach s3rver: the retry hides the blip.
    const blip = await startTcpProxy({ target: s3.port, mode: (n) => (n === 0 ? 'http503' : 'forward') });
    try {
      const d = driverAt(blip.endpoint, 2);
      expect(await d.putIfAbsent('wal/slow', Buffer.from('ok'))).toBe('created');
      expect(await d.get('wal/slow')).toEqual(Buffer.from('ok'));
    } finally {
      await blip.close();
    }
    const down = await startTcpProxy({ mode: () => 'http503' });
    try {
      const d = driverAt(down.endpoint, 2);
      for (const op of ['get', 'head', 'putIfAbsent'] as const) {
        const err = await failure(operations(d)[op]!());
        expect(err.code, op).toBe('REPOSITORY_UNAVAILABLE');
        expect(err.message, op).toMatch(/HTTP 503/);
        expect(err.message, op).toContain('after 3 attempts');
      }
    } finally {
      await down.close();
    }
  });

  it('wrong credentials: REPOSITORY_INVALID saying to check them, without printing the secret', async () => {
    // s3rver rejects unknown access keys; it does not verify SigV4 signatures (wrong secrets pass).
    const secret = 'walship-test-secret-must-not-leak';
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'AKIAWALSHIPWRONGKEY', AWS_SECRET_ACCESS_KEY: secret });
    try {
      const d = driverAt(s3.endpoint);
      for (const [op, run] of Object.entries(operations(d))) {
        const err = await failure(run());
        expect(err.code, op).toBe('REPOSITORY_INVALID');
        expect(err.message, op).toMatch(/HTTP 403/);
        expect(err.message, op).toContain('check credentials (AWS_ACCESS_KEY_ID');
        expect(err.message, op).not.toContain(secret);
      }
      expect((await failure(d.get('wal/x'))).message).toContain('InvalidAccessKeyId');
    } finally {
      Object.assign(process.env, s3.env);
    }
  });

  it('no credentials anywhere: REPOSITORY_INVALID saying how to provide them', async () => {
    const saved = { ...process.env };
    for (const k of Object.keys(process.env)) if (k.startsWith('AWS_') && k !== 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED') delete process.env[k];
    Object.assign(process.env, {
      AWS_CONFIG_FILE: '/nonexistent/walship-test/config',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/walship-test/credentials',
      AWS_EC2_METADATA_DISABLED: 'true', // no instance-metadata lookups from tests
    });
    try {
      const err = await failure(driverAt(s3.endpoint).get('wal/x'));
      expect(err.code).toBe('REPOSITORY_INVALID');
      expect(err.message).toContain('no AWS credentials found');
      expect(err.message).toContain('AWS_PROFILE');
    } finally {
      process.env = saved;
    }
  });

  it('NoSuchBucket: REPOSITORY_INVALID for every operation', async () => {
    const d = driverAt(s3.endpoint, 1, 'walship-no-such-bucket');
    for (const [op, run] of Object.entries(operations(d))) {
      const err = await failure(run());
      expect(err.code, op).toBe('REPOSITORY_INVALID');
      expect(err.message, op).toContain('bucket "walship-no-such-bucket" does not exist');
    }
  });

  it('a body cut off midway is read again; one cut off every time is REPOSITORY_UNAVAILABLE, not a short object', async () => {
    const body = Buffer.alloc(64 * 1024, 7);
    let gets = 0;
    let cutFirst = 1;
    const web = createServer((req, res) => {
      if (req.method !== 'GET') return void res.writeHead(400).end();
      gets++;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
      if (gets <= cutFirst) {
        // Half the promised bytes, then the connection dies.
        res.write(body.subarray(0, body.length / 2), () => res.socket?.destroy());
      } else {
        res.end(body);
      }
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    try {
      const port = (web.address() as { port: number }).port;
      const d = driverAt(`http://127.0.0.1:${port}`, 2);
      const got = await d.get('wal/x');
      expect(got?.equals(body)).toBe(true);
      expect(gets).toBe(2);
      gets = 0;
      cutFirst = Infinity;
      expect((await failure(d.get('wal/x'))).code).toBe('REPOSITORY_UNAVAILABLE');
      expect(gets).toBe(3);
    } finally {
      web.closeAllConnections();
      await new Promise((resolve) => web.close(resolve));
    }
  });

  it('an endpoint that is not S3 (404 for everything) is never read as "absent"', async () => {
    const web = createServer((_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>'));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    try {
      const port = (web.address() as { port: number }).port;
      const d = driverAt(`http://127.0.0.1:${port}`);
      for (const op of ['get', 'head', 'getRange'] as const) {
        expect((await failure(operations(d)[op]!())).code, op).toBe('REPOSITORY_INVALID');
      }
    } finally {
      web.closeAllConnections();
      await new Promise((resolve) => web.close(resolve));
    }
  });
});
