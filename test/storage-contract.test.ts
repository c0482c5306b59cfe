/**
 * The StorageDriver contract, run against every backend: the filesystem driver on a temp
 * directory and the S3 driver on a local s3rver. Real drivers, real stores, no mocks.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { StorageDriver } from '../src/storage/driver.js';
import { FsDriver } from '../src/storage/fs.js';
import { S3Driver, type S3DriverOptions } from '../src/storage/s3.js';
import { startS3rver, startTcpProxy, type S3rver } from './helpers/s3rver.js';

const SEG_DIR = 'wal/0000000100000000';

async function collect(it: AsyncIterable<{ key: string; size: number }>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const o of it) out.set(o.key, o.size);
  return out;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
  return 'resolved';
}

describe.each(['fs', 's3'] as const)('StorageDriver contract: %s', (backend) => {
  let s3: S3rver | undefined;
  let tmp: string;
  let n = 0;
  const savedEnv = { ...process.env };

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'walship-contract-'));
    if (backend === 's3') {
      s3 = await startS3rver({ buckets: ['walship-test', 'walship-root'] });
      // The driver finds credentials through the SDK's default chain, i.e. this environment.
      Object.assign(process.env, s3.env);
    }
  });
  afterAll(async () => {
    await s3?.stop();
    rmSync(tmp, { recursive: true, force: true });
    process.env = savedEnv;
  });

  /** A fresh, empty, usable repository for one test. */
  async function repo(opts: S3DriverOptions = {}, endpoint?: string): Promise<StorageDriver> {
    n++;
    const cfg = () => s3!.config(endpoint ? { s3_endpoint: endpoint } : {});
    const d = backend === 'fs' ? new FsDriver(join(tmp, `repo${n}`)) : new S3Driver(s3!.bucket, `t${n}/repo`, cfg(), opts);
    await d.create();
    return d;
  }

  /** A driver whose root is missing: a directory that does not exist / a bucket that does not exist. */
  function missingRoot(): StorageDriver {
    return backend === 'fs' ? new FsDriver(join(tmp, 'no-such-dir')) : new S3Driver('walship-no-such-bucket', 'repo', s3!.config());
  }

  it('reports missing objects as null', async () => {
    const d = await repo();
    expect(await d.get(`${SEG_DIR}/000000010000000000000001.zst`)).toBeNull();
    expect(await d.head(`${SEG_DIR}/000000010000000000000001.zst`)).toBeNull();
    expect(await d.getRange(`${SEG_DIR}/000000010000000000000001.zst`, 0, 10)).toBeNull();
    expect(await collect(d.list('wal/'))).toEqual(new Map());
  });

  it('putIfAbsent creates once and never overwrites', async () => {
    const d = await repo();
    const key = `${SEG_DIR}/000000010000000000000003.zst`;
    const first = randomBytes(1000);
    expect(await d.putIfAbsent(key, first)).toBe('created');
    expect(await d.putIfAbsent(key, randomBytes(1200))).toBe('exists');
    expect(await d.get(key)).toEqual(first);
    expect((await d.head(key))?.size).toBe(1000);
  });

  it('getRange reads a slice, short at the end, empty past the end', async () => {
    const d = await repo();
    const body = randomBytes(100);
    await d.putIfAbsent('obj', body);
    expect(await d.getRange('obj', 10, 20)).toEqual(body.subarray(10, 30));
    expect(await d.getRange('obj', 90, 20)).toEqual(body.subarray(90));
    expect((await d.getRange('obj', 100, 5))?.length).toBe(0);
    expect((await d.getRange('obj', 500, 5))?.length).toBe(0);
  });

  it('getStream reads the object in order, null when absent; stopping early frees it', async () => {
    const d = await repo();
    expect(await d.getStream('nothing-here')).toBeNull();
    const body = randomBytes(3 * 1024 * 1024 + 123);
    await d.putIfAbsent('big', body);
    const parts: Buffer[] = [];
    for await (const c of (await d.getStream('big'))!) parts.push(c);
    expect(Buffer.concat(parts).equals(body)).toBe(true);
    const empty = await d.getStream('big');
    await empty!.return();
    const one = (await d.getStream('big'))!;
    expect((await one.next()).done).toBe(false);
    await one.return();
    expect((await d.get('big'))!.equals(body)).toBe(true);
  });

  it.runIf(backend === 's3')('getStream resumes a body that breaks off where it stopped, and fails hard when it cannot', async () => {
    const d0 = await repo();
    const body = randomBytes(2 * 1024 * 1024);
    await d0.putIfAbsent('cut', body);
    // The first connection's answer breaks off after 300 KB; the ranged GET after it goes through.
    const proxy = await startTcpProxy({ target: s3!.port, mode: (n) => (n === 0 ? 'cut' : 'forward'), cutAfterBytes: 300_000 });
    onTestFinished(() => proxy.close());
    const viaProxy = new S3Driver(s3!.bucket, (d0 as S3Driver).prefix, s3!.config({ s3_endpoint: proxy.endpoint, s3_max_retries: '2' }));
    const parts: Buffer[] = [];
    for await (const c of (await viaProxy.getStream('cut'))!) parts.push(c);
    expect(Buffer.concat(parts).equals(body)).toBe(true);
    expect(proxy.connections).toBeGreaterThan(1);
    // Every answer breaks off: an error, never a short object.
    const always = await startTcpProxy({ target: s3!.port, mode: () => 'cut', cutAfterBytes: 300_000 });
    onTestFinished(() => always.close());
    const broken = new S3Driver(s3!.bucket, (d0 as S3Driver).prefix, s3!.config({ s3_endpoint: always.endpoint, s3_max_retries: '1' }));
    const read = async () => {
      let n = 0;
      for await (const c of (await broken.getStream('cut'))!) n += c.length;
      return n;
    };
    expect(await codeOf(read())).toBe('REPOSITORY_UNAVAILABLE');
  });

  it('concurrent putIfAbsent of one key: exactly one is created and its content stays', async () => {
    const d = await repo();
    const bodies = Array.from({ length: 8 }, () => randomBytes(4096));
    const results = await Promise.all(bodies.map((b) => d.putIfAbsent('race', b)));
    expect(results.filter((r) => r === 'created')).toHaveLength(1);
    expect(await d.get('race')).toEqual(bodies[results.indexOf('created')]);
  });

  it('lists every object under a prefix, across pages', async () => {
    // S3: 7 keys a page, so listing the 30 objects below takes 5 ListObjectsV2 requests,
    // which a recording proxy in front of s3rver counts.
    const proxy = backend === 's3' ? await startTcpProxy({ target: s3!.port, mode: () => 'forward' }) : undefined;
    onTestFinished(() => proxy?.close());
    const d = await repo({ listPageSize: 7 }, proxy?.endpoint);
    const expected = new Map<string, number>();
    const put = async (key: string, size: number) => {
      await d.putIfAbsent(key, randomBytes(size));
      expected.set(key, size);
    };
    for (let i = 0; i < 25; i++) await put(`${SEG_DIR}/0000000100000000000000${i.toString(16).padStart(2, '0').toUpperCase()}.zst`, 10 + i);
    for (let i = 0; i < 3; i++) await put(`wal/0000000200000000/00000002000000000000000${i}.zst`, 5);
    await put('identity.json', 3);
    await put('wallet', 4); // shares the "wal" stem, not the "wal/" prefix

    const seg = await collect(d.list(`${SEG_DIR}/`));
    expect(seg.size).toBe(25);
    for (const [k, size] of seg) expect(expected.get(k)).toBe(size);
    expect((await collect(d.list('wal/'))).size).toBe(28);
    expect(await collect(d.list(''))).toEqual(expected);
    if (proxy) {
      // At least ceil(25/7) + ceil(28/7) + ceil(30/7) pages, all but the first of each continued.
      const lists = proxy.requests.filter((r) => r.startsWith('GET ') && r.includes('list-type=2'));
      expect(lists.length).toBeGreaterThanOrEqual(4 + 4 + 5);
      expect(lists.filter((r) => r.includes('continuation-token=')).length).toBe(lists.length - 3);
    }
  });

  it('lists in key order, after startAfter, and stops requesting when the reader stops; names the children of a directory', async () => {
    const proxy = backend === 's3' ? await startTcpProxy({ target: s3!.port, mode: () => 'forward' }) : undefined;
    onTestFinished(() => proxy?.close());
    const d = await repo({ listPageSize: 3 }, proxy?.endpoint);
    // Names chosen so that a directory and a file share a stem: "a.b" sorts before "a/...".
    const keys = [
      'wal/00000001.history.zst',
      'wal/0000000100000000/000000010000000000000001.zst',
      'wal/0000000100000000/000000010000000000000002.partial.zst',
      'wal/0000000100000000/000000010000000000000002.zst',
      'wal/0000000100000001/000000010000000100000000.zst',
      'wal/00000002.history.zst',
      'wal/0000000200000000/000000020000000000000003.zst',
      'backups/20261201T000000Z-aaaa/backup.json',
      'backups/20261201T000000Z-aaaa/chunk-000001.tar.zst',
      'backups/20261202T000000Z-bbbb/started.json',
      'backups/x.y',
    ];
    for (const k of [...keys].reverse()) await d.putIfAbsent(k, Buffer.from(k));
    const listed = async (prefix: string, startAfter?: string) => [...(await collect(d.list(prefix, { startAfter }))).keys()];
    const sorted = [...keys].sort();
    expect(await listed('')).toEqual(sorted);
    expect(await listed('wal/')).toEqual(sorted.filter((k) => k.startsWith('wal/')));
    expect(await listed('wal/00000001')).toEqual(keys.slice(0, 5));
    expect(await listed('wal/0000000100000000/', 'wal/0000000100000000/000000010000000000000001.zst')).toEqual(keys.slice(2, 4));
    // Everything of the timelines after 1 ('~' sorts after every character of a WAL name).
    expect(await listed('wal/', 'wal/00000001~')).toEqual(keys.slice(5, 7));
    expect(await listed('wal/', 'wal/0000000100000000/000000010000000000000002.zst')).toEqual(keys.slice(4, 7));
    expect(await listed('wal/', 'wal/zzz')).toEqual([]);
    // A reader that stops after the first key stops the listing: one page, not all of them.
    const before = d.requests;
    for await (const o of d.list('wal/')) {
      expect(o.key).toBe(keys[0]);
      break;
    }
    expect(d.requests - before).toBe(1);
    expect(await d.children('backups/')).toEqual(['20261201T000000Z-aaaa', '20261202T000000Z-bbbb', 'x.y']);
    expect(await d.children('backups/20261201T000000Z-aaaa/')).toEqual(['backup.json', 'chunk-000001.tar.zst']);
    expect(await d.children('nothing/')).toEqual([]);
    if (proxy) expect(proxy.requests.some((r) => r.includes('start-after='))).toBe(true);
  });

  it('remove deletes the named objects durably, ignores absent keys, and batches on S3', async () => {
    const d = await repo({ listPageSize: 100 });
    const keys = Array.from({ length: 1100 }, (_, i) => `${SEG_DIR}/${String(i).padStart(24, '0')}.zst`);
    for (const k of keys) await d.putIfAbsent(k, Buffer.from(k));
    await d.putIfAbsent('backups/b1/backup.json', Buffer.from('{}'));
    const before = d.requests;
    await d.remove([...keys.slice(0, 1050), `${SEG_DIR}/no-such-object.zst`, 'backups/b1/backup.json']);
    // S3: one DeleteObjects request per 1000 keys (two here), not one per object.
    if (backend === 's3') expect(d.requests - before).toBe(2);
    expect([...(await collect(d.list('')))].map(([k]) => k)).toEqual(keys.slice(1050));
    expect(await d.get(keys[0]!)).toBeNull();
    expect(await d.get(keys[1099]!)).toEqual(Buffer.from(keys[1099]!));
    expect(await d.children('backups/')).toEqual([]);
    // A directory remove emptied is made again by the next write into it.
    await d.remove(keys.slice(1050));
    expect(await d.putIfAbsent(keys[0]!, Buffer.from('again'))).toBe('created');
    expect(await d.get(keys[0]!)).toEqual(Buffer.from('again'));
    await d.remove([]);
  });

  it('lists leftovers: the temporary files of a killed write (fs)', async () => {
    const d = await repo();
    await d.putIfAbsent(`${SEG_DIR}/000000010000000000000001.zst`, Buffer.from('x'));
    expect(await collect(d.leftovers('wal/'))).toEqual(new Map());
    if (backend === 's3') return; // s3rver keeps no list of incomplete multipart uploads: only that the call works is checked
    const { writeFileSync } = await import('node:fs');
    const root = (d as FsDriver).root;
    writeFileSync(join(root, SEG_DIR, '.000000010000000000000002.zst.999999.abcdef01.tmp'), 'half');
    writeFileSync(join(root, SEG_DIR, '.hidden-but-not-ours'), 'x');
    const found = [];
    for await (const l of d.leftovers('wal/')) found.push(l);
    expect(found).toHaveLength(1);
    expect(found[0]!.key.startsWith(`${SEG_DIR}/`)).toBe(true);
    expect(found[0]!.kind).toBe('temporary-file');
    expect(await collect(d.leftovers('backups/'))).toEqual(new Map());
  });

  it('check and create succeed on a usable root', async () => {
    const d = await repo();
    await expect(d.check()).resolves.toBeUndefined();
    await expect(d.create()).resolves.toBeUndefined();
  });

  it('a missing root is REPOSITORY_INVALID, never "absent"', async () => {
    const d = missingRoot();
    expect(await codeOf(d.check())).toBe('REPOSITORY_INVALID');
    expect(await codeOf(d.get('x/y'))).toBe('REPOSITORY_INVALID');
    expect(await codeOf(d.head('x/y'))).toBe('REPOSITORY_INVALID');
    expect(await codeOf(d.getRange('x/y', 0, 4))).toBe('REPOSITORY_INVALID');
    expect(await codeOf(d.putIfAbsent('x/y', Buffer.from('data')))).toBe('REPOSITORY_INVALID');
    if (backend === 's3') {
      // Buckets are never created implicitly.
      expect(await codeOf(d.create())).toBe('REPOSITORY_INVALID');
      expect(await codeOf(collect(d.list('')))).toBe('REPOSITORY_INVALID');
    }
  });

  it.runIf(backend === 's3')('keeps user metadata and content type beside the object', async () => {
    const d = await repo();
    const meta = { 'walship-sha256': 'ab'.repeat(32), 'walship-raw-size': '16777216', 'walship-name': '000000010000000000000003' };
    await d.putIfAbsent('m.zst', Buffer.from('zz'), { meta, contentType: 'application/zstd' });
    expect(await d.head('m.zst')).toEqual({ key: 'm.zst', size: 2, meta });
    // s3rver answers unsigned requests: read the stored headers directly.
    const res = await fetch(`${s3!.endpoint}/${s3!.bucket}/t${n}/repo/m.zst`, { method: 'HEAD' });
    expect(res.headers.get('content-type')).toBe('application/zstd');
    // Metadata that HTTP headers would mangle is refused instead of being stored changed.
    expect(await codeOf(d.putIfAbsent('bad', Buffer.from('x'), { meta: { Upper: 'x' } }))).toBe('INTERNAL');
  });

  it.runIf(backend === 's3')('stores at the bucket root when the prefix is empty, and prefixes isolate repositories', async () => {
    const cfg = s3!.config();
    const root = new S3Driver('walship-root', '', cfg);
    const a = new S3Driver('walship-root', 'a', cfg);
    const ab = new S3Driver('walship-root', 'ab', cfg);
    expect(root.location).toBe('s3://walship-root');
    await a.putIfAbsent('k1', Buffer.from('a'));
    await ab.putIfAbsent('k1', Buffer.from('ab'));
    expect(await collect(root.list(''))).toEqual(new Map([['a/k1', 1], ['ab/k1', 2]]));
    expect(await collect(a.list(''))).toEqual(new Map([['k1', 1]]));
    expect(await root.get('ab/k1')).toEqual(Buffer.from('ab'));
  });

  it.runIf(backend === 's3')('sees objects changed behind its back (raw access for damage tests)', async () => {
    const d = await repo();
    await d.putIfAbsent('wal/x', Buffer.from('original'));
    await s3!.putRaw(`t${n}/repo/wal/x`, Buffer.from('damaged'));
    expect(await d.get('wal/x')).toEqual(Buffer.from('damaged'));
    await s3!.deleteRaw(`t${n}/repo/wal/x`);
    expect(await d.get('wal/x')).toBeNull();
  });

  it.runIf(backend === 's3')('uploads large bodies in parts', async () => {
    // Thresholds scaled down so the test moves 2.5 MiB instead of > 64 MiB; same code path.
    const proxy = await startTcpProxy({ target: s3!.port, mode: () => 'forward' });
    try {
      n++;
      const d = new S3Driver(s3!.bucket, `t${n}/repo`, s3!.config({ s3_endpoint: proxy.endpoint }), {
        multipartThreshold: 1024 * 1024,
        partSize: 256 * 1024,
      });
      const body = randomBytes(2.5 * 1024 * 1024);
      const meta = { 'walship-name': 'big' };
      expect(await d.putIfAbsent('big', body, { meta })).toBe('created');
      expect(proxy.requests.filter((r) => r.startsWith('PUT ') && r.includes('partNumber='))).toHaveLength(10);
      expect(proxy.requests.some((r) => r.startsWith('POST ') && r.includes('uploadId='))).toBe(true);
      // (Buffer.equals: a deep toEqual over megabytes is very slow.)
      expect((await d.get('big'))?.equals(body)).toBe(true);
      expect(await d.head('big')).toEqual({ key: 'big', size: body.length, meta });
      expect(await d.putIfAbsent('big', randomBytes(2 * 1024 * 1024))).toBe('exists');
      // A body at the threshold is still one PUT.
      proxy.requests.length = 0;
      await d.putIfAbsent('small', randomBytes(1024 * 1024));
      expect(proxy.requests.filter((r) => r.startsWith('PUT '))).toEqual([`PUT /${s3!.bucket}/t${n}/repo/small?x-id=PutObject`]);
    } finally {
      await proxy.close();
    }
  });
});
