import { it } from 'vitest';
import { createServer } from 'node:http';
import { S3Driver } from '../src/storage/s3.js';
import { freePort, startS3rver, startTcpProxy } from './helpers/s3rver.js';
it('messages', async () => {
  const s3 = await startS3rver();
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
  const show = async (label: string, d: S3Driver) => {
    for (const [op, f] of Object.entries({ get: () => d.get('wal/x'), head: () => d.head('wal/x'), put: () => d.putIfAbsent('wal/x', Buffer.from('x')), list: async () => { for await (const _ of d.list('')) {} }, check: () => d.check() })) {
      try { await f(); console.log(label, op, 'OK'); } catch (e: any) { console.log(label, op, e.code, '|', e.message); }
    }
  };
  const cfg = (ep: string) => s3.config({ s3_endpoint: ep, s3_request_timeout: '300', s3_max_retries: '1' });
  await show('down', new S3Driver(s3.bucket, 'p', cfg(`http://127.0.0.1:${await freePort()}`)));
  await show('downlocalhost', new S3Driver(s3.bucket, 'p', cfg(`http://localhost:${await freePort()}`)));
  await show('nxdomain', new S3Driver(s3.bucket, 'p', cfg(`http://nonexistent.invalid:9000`)));
  const bh = await startTcpProxy({ mode: () => 'blackhole' });
  await show('blackhole', new S3Driver(s3.bucket, 'p', cfg(bh.endpoint)));
  await bh.close();
  const p503 = await startTcpProxy({ mode: () => 'http503' });
  await show('503', new S3Driver(s3.bucket, 'p', cfg(p503.endpoint)));
  await p503.close();
  await show('nobucket', new S3Driver('nope-bucket', 'p', cfg(s3.endpoint)));
  process.env.AWS_ACCESS_KEY_ID = 'WRONG';
  await show('wrongkey', new S3Driver(s3.bucket, 'p', cfg(s3.endpoint)));
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  await show('badclass', new S3Driver(s3.bucket, 'p', s3.config({ s3_storage_class: 'FOO' })));
  await show('sse', new S3Driver(s3.bucket, 'sse', s3.config({ s3_storage_class: 'STANDARD_IA', s3_sse: 'aws:kms', s3_sse_kms_key_id: 'k' })));
  try { new S3Driver(s3.bucket, 'p', s3.config({ s3_endpoint: 'ftp://x' })); } catch (e: any) { console.log(e.code, e.message); }
  await s3.stop();
});
