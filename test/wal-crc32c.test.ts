import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { crc32c, crc32cAligned, crc32cCombine, crc32cImplementation, crc32cRaw, crc32cRawJs, wordView } from '../src/wal/crc32c.js';

/** Bit-at-a-time reference. */
function slow(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

describe('crc32c', () => {
  it('matches the standard check value and the iSCSI (RFC 3720) vectors', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
  });

  it('checks the WAL record test vector of docs/wal-format.md (body, then header bytes 0..20)', () => {
    const rec = Buffer.from('22000000d5020000e05f0102000000000001000017e67213ff0851ff837f02040300', 'hex');
    expect(rec.length).toBe(34);
    const c = crc32c(rec, crc32c(rec, 0, 24, 34), 0, 20);
    expect(c).toBe(0x1372e617);
    expect(c).toBe(rec.readUInt32LE(20));
  });

  it('agrees with a bit-at-a-time reference at every length and alignment', () => {
    const big = randomBytes(4096 + 64);
    for (let off = 0; off < 8; off++) {
      for (const len of [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 100, 255, 256, 257, 1000, 4096]) {
        const v = big.subarray(off, off + len);
        expect(crc32c(v), `off ${off} len ${len}`).toBe(slow(v));
      }
    }
  });

  it('uses the native implementation for long ranges here, and both implementations agree', () => {
    expect(crc32cImplementation).toBe('native');
    const data = randomBytes(70_000);
    const words = wordView(data);
    for (const [start, end] of [[0, 511], [0, 512], [3, 70_000], [4, 8196], [1000, 1513], [8, 65_536]] as const) {
      for (const init of [-1, 0, 0x1234567]) {
        const js = crc32cRawJs(data, words, start, end, init);
        expect(crc32cRaw(data, words, start, end, init), `${start}..${end} from ${init}`).toBe(js);
        if (words && start % 4 === 0) expect(crc32cAligned(data, words, start, end, init)).toBe(js);
      }
    }
    expect(crc32cRawJs(data, null, 0, data.length, -1)).toBe(~slow(data) | 0);
  });

  it('continues a running CRC across arbitrary splits', () => {
    const data = randomBytes(70_000);
    const whole = crc32c(data);
    for (const cut of [0, 1, 5, 8, 13, 4096, 69_999, 70_000]) {
      expect(crc32c(data, crc32c(data, 0, 0, cut), cut, data.length)).toBe(whole);
    }
  });

  it('the aligned fast path equals the general one for every short length', () => {
    const data = randomBytes(512);
    const words = wordView(data)!;
    expect(words).not.toBeNull();
    for (let start = 0; start < 64; start += 4) {
      for (let len = 0; len <= 200; len++) {
        expect(crc32cAligned(data, words, start, start + len, -1)).toBe(crc32cRaw(data, null, start, start + len, -1));
      }
    }
  });

  it('combines the CRCs of two pieces into the CRC of their concatenation', () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const whole = crc32c(data);
    for (const cut of [0, 1, 7, 24, 8192, 1_000_003, data.length - 1, data.length]) {
      const a = data.subarray(0, cut);
      const b = data.subarray(cut);
      expect(crc32cCombine(crc32c(a), crc32c(b), b.length), `cut ${cut}`).toBe(whole);
    }
    // Chained over many pieces, as a record split over several segments is.
    let acc = 0;
    for (let i = 0; i < data.length; i += 300_001) {
      const piece = data.subarray(i, Math.min(i + 300_001, data.length));
      acc = crc32cCombine(acc, crc32c(piece), piece.length);
    }
    expect(acc).toBe(whole);
  });

  it('rejects ranges out of bounds', () => {
    expect(() => crc32c(Buffer.alloc(4), 0, 0, 5)).toThrow(RangeError);
  });
});
