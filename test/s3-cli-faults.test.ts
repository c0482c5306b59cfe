/**
 * archive-push / archive-fetch through the real CLI against an S3 endpoint that is down, slow,
 * or refuses the credentials: push fails (nothing recorded), fetch fails hard (never "missing"),
 * and once the endpoint is back the retry succeeds. Also: the object metadata a catalog rebuild
 * needs is readable with a HEAD alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeTempDir, userTempDir } from './helpers/pg.js';
import { walship } from './helpers/walship.js';
import { makeWalFixture, type WalFixture } from './helpers/fixtures.js';
import { startS3rver, startTcpProxy, freePort, type S3rver } from './helpers/s3rver.js';
import { S3Driver } from '../src/storage/s3.js';

let fx: WalFixture;
let s3: S3rver;
let work: string;
const savedEnv = { ...process.env };

beforeAll(async () => {
  [fx, s3] = await Promise.all([makeWalFixture({ segments: 2 }), startS3rver()]);
  Object.assign(process.env, s3.env);
  work = userTempDir('s3faults');
});
afterAll(async () => {
  await s3?.stop();
  process.env = savedEnv;
  await removeTempDir(work);
});

const fast = { WALSHIP_S3_REQUEST_TIMEOUT: '400', WALSHIP_S3_MAX_RETRIES: '1' };

describe('S3 repository faults through the CLI', () => {
  it('push fails while the endpoint is down, records nothing, and succeeds once it is back', async () => {
    const port = await freePort();
    const catalog = join(work, 'down.db');
    const env = { ...s3.env, ...fast, WALSHIP_S3_ENDPOINT: `http://127.0.0.1:${port}` };
    const seg = join(fx.dir, fx.segments[0]!);
    const args = ['archive-push', seg, '--repo', s3.repoUrl('down'), '--catalog', catalog];
    const t0 = Date.now();
    const r = await walship(args, { env });
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toMatch(/code=REPOSITORY_UNAVAILABLE/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(existsSync(catalog) ? new Database(catalog, { readonly: true }).prepare('SELECT count(*) AS n FROM wal_files').get() : { n: 0 }).toEqual({ n: 0 });

    const f = await walship(['archive-fetch', fx.segments[0]!, join(work, 'x'), '--repo', s3.repoUrl('down'), '--catalog', catalog], { env });
    expect(f.code, f.stderr).toBe(255);
    expect(f.stderr).toMatch(/code=REPOSITORY_UNAVAILABLE/);

    // The endpoint comes back (a proxy to s3rver on the same port): the retry succeeds.
    const proxy = await startTcpProxy({ target: s3.port, mode: () => 'forward', port });
    try {
      const again = await walship(args, { env });
      expect(again.code, again.stderr).toBe(0);
      const out = join(work, 'back');
      expect((await walship(['archive-fetch', fx.segments[0]!, out, '--repo', s3.repoUrl('down'), '--catalog', catalog], { env })).code).toBe(0);
      expect(readFileSync(out).equals(fx.read(fx.segments[0]!))).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it('honours the request timeout against an endpoint that never answers', async () => {
    const proxy = await startTcpProxy({ mode: () => 'blackhole' });
    try {
      const env = { ...s3.env, ...fast, WALSHIP_S3_ENDPOINT: `http://127.0.0.1:${proxy.port}` };
      const t0 = Date.now();
      const r = await walship(['archive-push', join(fx.dir, fx.segments[0]!), '--repo', s3.repoUrl('slow'), '--catalog', join(work, 'slow.db')], { env });
      expect(r.code).toBe(6);
      expect(Date.now() - t0).toBeLessThan(20_000);
      const f = await walship(['archive-fetch', fx.segments[0]!, join(work, 'y'), '--repo', s3.repoUrl('slow'), '--catalog', join(work, 'slow.db')], { env });
      expect(f.code).toBe(255);
    } finally {
      await proxy.close();
    }
  });

  it('says clearly when the credentials are refused, without printing them', async () => {
    const env = { ...s3.env, AWS_ACCESS_KEY_ID: 'NOT-A-KEY', AWS_SECRET_ACCESS_KEY: 'secret-value-123' };
    const r = await walship(['archive-push', join(fx.dir, fx.segments[0]!), '--repo', s3.repoUrl('creds'), '--catalog', join(work, 'creds.db')], { env });
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/credential|access key|AccessDenied|InvalidAccessKeyId/i);
    expect(r.stderr).not.toContain('secret-value-123');
    const f = await walship(['archive-fetch', fx.segments[0]!, join(work, 'z'), '--repo', s3.repoUrl('creds'), '--catalog', join(work, 'creds.db')], { env });
    expect(f.code).toBe(255);
  });

  it('stores the metadata a catalog rebuild needs as object metadata (HEAD alone)', async () => {
    const seg = fx.segments[1]!;
    const r = await walship(['archive-push', join(fx.dir, seg), '--repo', s3.repoUrl('meta'), '--catalog', join(work, 'meta.db')], { env: s3.env });
    expect(r.code, r.stderr).toBe(0);
    const head = await new S3Driver(s3.bucket, 'meta', s3.config()).head(`wal/${seg.slice(0, 16)}/${seg}.zst`);
    expect(head?.meta).toMatchObject({
      'walship-name': seg,
      'walship-raw-size': String(fx.read(seg).length),
      'walship-compression': 'zstd',
      'walship-system-identifier': fx.systemIdentifier,
      'walship-timeline': '1',
    });
    expect(head?.meta?.['walship-sha256']).toMatch(/^[0-9a-f]{64}$/);
  });
});
