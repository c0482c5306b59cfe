import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { decodeObject, decodeMeta, encodeObject, sha256, type ObjectMeta } from '../src/archive/envelope.js';
import { objectKeyFor, fileNameFromKey } from '../src/archive/keys.js';
import { parseWalFileName } from '../src/wal/names.js';
import { segmentRuns } from '../src/catalog/info.js';

const raw = Buffer.concat([Buffer.from('walship'.repeat(1000)), Buffer.alloc(100000)]);
const meta: Omit<ObjectMeta, 'bodySize'> = { format: 1, name: '000000010000000000000001', sha256: sha256(raw), rawSize: raw.length, compression: 'zstd', pushedAt: '2026-11-24T00:00:00.000Z', timeline: 1 };

describe('archived object format', () => {
  it('round-trips and verifies', async () => {
    const { object: obj, meta: full } = await encodeObject(raw, meta, 1);
    expect(obj.length).toBeLessThan(raw.length / 10);
    expect(decodeMeta(obj.subarray(0, 4096)).meta).toEqual(full);
    expect(full).toEqual({ ...meta, bodySize: obj.length - decodeMeta(obj).bodyOffset });
    const back = await decodeObject(obj);
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
    await expect(decodeObject(flipped)).rejects.toThrow(/corrupt|checksum mismatch|decompressed to/);
    await expect(decodeObject(obj.subarray(0, obj.length - 20))).rejects.toThrow(/object is incomplete: \d+ bytes of compressed data, expected/);
    const { object: lying } = await encodeObject(raw, { ...meta, sha256: '0'.repeat(64) }, 1);
    await expect(decodeObject(lying)).rejects.toThrow(/checksum mismatch/);
    await expect(decodeObject(Buffer.from('not an object'))).rejects.toThrow(/does not start with walship metadata/);
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
