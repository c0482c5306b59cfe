import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { decodeObject, decodeObjectStream, decodeMeta, encodeObject, sha256, type ObjectMeta, type Recorded } from '../src/archive/envelope.js';
import { objectKeyFor, fileNameFromKey } from '../src/archive/keys.js';
import { parseWalFileName } from '../src/wal/names.js';
import { segmentRuns } from '../src/commands/info.js';
import { compress as zstdCompress } from 'zstd-napi';

/** An object of `meta` over `body`, framed as encodeObject frames it (for forging test objects). */
function framed(meta: object, body: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(meta));
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x184d2a57, 0);
  head.writeUInt32LE(json.length, 4);
  return Buffer.concat([head, json, body]);
}

const raw = Buffer.concat([Buffer.from('walship'.repeat(1000)), Buffer.alloc(100000)]);
const meta: Omit<ObjectMeta, 'bodySize' | 'bodySha256'> = { format: 1, name: '000000010000000000000001', sha256: sha256(raw), rawSize: raw.length, compression: 'zstd', pushedAt: '2026-11-24T00:00:00.000Z', timeline: 1 };

/**
 * decodeObjectStream over `buf` read `size` bytes at a time, collected: what decodeObject returns.
 * With `reuse`, each piece is copied before the next is asked for (it is overwritten then).
 */
const streamedBy = (size: number, reuse = false) => async (buf: Buffer, recorded?: Recorded): Promise<{ meta: ObjectMeta; raw: Buffer }> => {
  const chunks = (async function* () {
    for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
  })();
  const { meta, raw } = await decodeObjectStream(chunks, recorded, { reuse });
  const parts: Buffer[] = [];
  for await (const c of raw) parts.push(reuse ? Buffer.from(c) : c);
  return { meta, raw: Buffer.concat(parts) };
};

// Every case below holds for the whole object and for the object read as a stream, in chunks of
// any size (a chunk boundary inside the metadata frame, inside zstd's frame header, ...).
describe.each([
  ['whole', decodeObject],
  ['streamed in 1 MiB chunks', streamedBy(1 << 20)],
  ['streamed in 4 KiB chunks', streamedBy(4096)],
  ['streamed in 3-byte chunks', streamedBy(3)],
  ['streamed in 64 KiB chunks, one output buffer reused', streamedBy(65536, true)],
] as const)('archived object format (%s)', (_how, decode) => {
  it('decodes content larger than one streamed chunk', async () => {
    // More than the 16 MiB decodeObjectStream hands on at a time.
    const big = Buffer.concat(Array.from({ length: 260 }, (_, i) => Buffer.concat([Buffer.from(`block ${i} `.repeat(2000)), Buffer.alloc(50_000, i)])));
    expect(big.length).toBeGreaterThan(17 << 20);
    const { object, meta: full } = await encodeObject(big, { ...meta, sha256: sha256(big), rawSize: big.length }, 1);
    const back = await decode(object, { sha256: full.sha256, bodySha256: full.bodySha256! });
    expect(back.raw.equals(big)).toBe(true);
    expect(back.meta).toEqual(full);
  });

  it('round-trips and verifies', async () => {
    const { object: obj, meta: full } = await encodeObject(raw, meta, 1);
    expect(obj.length).toBeLessThan(raw.length / 10);
    expect(decodeMeta(obj.subarray(0, 4096)).meta).toEqual(full);
    const body = obj.subarray(decodeMeta(obj).bodyOffset);
    expect(full).toEqual({ ...meta, bodySha256: sha256(body), bodySize: body.length });
    expect(body[4]! & 0x04).toBe(0x04); // zstd's own content checksum is on
    const back = await decode(obj);
    expect(back.raw.equals(raw)).toBe(true);
  });

  it('is a plain .zst file that the zstd tool decompresses', async () => {
    const { object: obj } = await encodeObject(raw, meta, 3);
    const r = spawnSync('zstd', ['-d', '-c'], { input: obj, maxBuffer: 1 << 24 });
    if (r.error) return; // zstd CLI not installed: nothing to compare against
    expect(r.status).toBe(0);
    expect(Buffer.from(r.stdout).equals(raw)).toBe(true);
  });

  it('detects damage: flipped bits, truncation, a lying checksum', async () => {
    const { object: obj } = await encodeObject(raw, meta, 1);
    const flipped = Buffer.from(obj);
    flipped[flipped.length - 10] ^= 0xff;
    await expect(decode(flipped)).rejects.toThrow(/checksum mismatch: compressed data sha256 [0-9a-f]{64}, recorded/);
    await expect(decode(obj.subarray(0, obj.length - 20))).rejects.toThrow(/object is incomplete: \d+ bytes of compressed data, expected/);
    const { object: lying } = await encodeObject(raw, meta, 1);
    const { meta: m, bodyOffset } = decodeMeta(lying);
    await expect(decode(framed({ ...m, bodySha256: '0'.repeat(64) }, lying.subarray(bodyOffset)))).rejects.toThrow(/checksum mismatch: compressed data/);
    await expect(decode(Buffer.from('not an object'))).rejects.toThrow(/does not start with walship metadata/);
  });

  it("verifies the compressed data's checksum, and zstd checks what it decompresses to", async () => {
    const { object: obj, meta: full } = await encodeObject(raw, meta, 1);
    const body = Buffer.from(obj.subarray(decodeMeta(obj).bodyOffset));
    // Damage zstd's own checksum at the end of the frame, and make the metadata agree with the
    // damaged data: only zstd's check is left to notice.
    body[body.length - 1] ^= 0xff;
    await expect(decode(framed({ ...full, bodySha256: sha256(body) }, body))).rejects.toThrow(/compressed data is corrupt/);
  });

  it('verifies by the decompressed content where the compressed data cannot stand for it', async () => {
    const other = Buffer.concat([raw.subarray(0, 1000), Buffer.from('changed'), raw.subarray(1007)]);
    const { object: otherObj } = await encodeObject(other, { ...meta, sha256: sha256(other) }, 1);
    const { meta: om, bodyOffset } = decodeMeta(otherObj);
    const otherBody = otherObj.subarray(bodyOffset);
    // Metadata that claims `raw`'s checksum over `other`'s compressed data (its own digest right):
    const forged = framed({ ...om, sha256: sha256(raw) }, otherBody);
    // an object of older walship (no bodySha256) is checked by the decompressed content;
    const { bodySha256: _b, ...old } = om;
    await expect(decode(framed({ ...old, sha256: sha256(raw) }, otherBody))).rejects.toThrow(/checksum mismatch: content sha256/);
    // so is a frame without zstd's checksum;
    const bare = zstdCompress(other);
    await expect(decode(framed({ ...om, sha256: sha256(raw), bodySha256: sha256(bare), bodySize: bare.length }, bare))).rejects.toThrow(
      /checksum mismatch: content sha256/,
    );
    // and so is a file whose catalog row predates body_sha256.
    await expect(decode(forged, { sha256: sha256(raw), bodySha256: null })).rejects.toThrow(/checksum mismatch: content sha256/);
    // A catalog row that has it must agree with the object.
    await expect(decode(forged, { sha256: sha256(raw), bodySha256: sha256(Buffer.from('x')) })).rejects.toThrow(
      /compressed data's checksum [0-9a-f]{64} differs from the catalog's/,
    );
    await expect(decode(otherObj, { sha256: sha256(raw), bodySha256: null })).rejects.toThrow(/its checksum [0-9a-f]{64} differs from the catalog's/);
    // Agreeing objects decode, by either path.
    const { object: good, meta: gm } = await encodeObject(raw, meta, 1);
    expect((await decode(good, { sha256: gm.sha256, bodySha256: gm.bodySha256! })).raw.equals(raw)).toBe(true);
    expect((await decode(good, { sha256: gm.sha256, bodySha256: null })).raw.equals(raw)).toBe(true);
  });
});

describe('repository keys', () => {
  it('derives a key from the name alone, and back', () => {
    const names = ['000000010000000A000000FF', '00000003.history', '000000010000000000000003.partial', '000000010000000000000003.00000028.backup'];
    const keys = names.map((n) => objectKeyFor(parseWalFileName(n)!));
    expect(keys).toEqual([
      'wal/000000010000000A/000000010000000A000000FF.zst',
      'wal/00000003.history.zst',
      'wal/0000000100000000/000000010000000000000003.partial.zst',
      'wal/0000000100000000/000000010000000000000003.00000028.backup.zst',
    ]);
    expect(keys.map(fileNameFromKey)).toEqual(names);
    expect(fileNameFromKey('identity.json')).toBeNull();
  });
});

describe('segment runs', () => {
  it('joins stretches of archived segments into runs, with the gaps between them', () => {
    const seg = 16 * 1024 * 1024;
    // As the catalog's stretches come: cut at block edges, so adjacent ones join.
    const { ranges, gaps } = segmentRuns([[1, 2], [3, 3], [7, 8], [255, 255], [256, 256]], 1, seg);
    expect(ranges.map((r) => [r.first, r.last, r.count])).toEqual([
      ['000000010000000000000001', '000000010000000000000003', 3],
      ['000000010000000000000007', '000000010000000000000008', 2],
      ['0000000100000000000000FF', '000000010000000100000000', 2],
    ]);
    expect(gaps.map((g) => [g.first, g.last, g.count])).toEqual([
      ['000000010000000000000004', '000000010000000000000006', 3],
      ['000000010000000000000009', '0000000100000000000000FE', 246],
    ]);
    expect(ranges[0]!.startLsn).toBe('0/1000000');
    expect(ranges[0]!.endLsn).toBe('0/4000000');
    expect(segmentRuns([], 1, seg)).toEqual({ ranges: [], gaps: [] });
  });
});
