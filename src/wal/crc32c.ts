/**
 * CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF),
 * the checksum PostgreSQL puts in every WAL record. Ranges of NATIVE_MIN bytes or more go to
 * @node-rs/crc32 (the CPU's CRC32 instruction, ~10x faster on full pages and bulk records);
 * shorter ones, where a native call costs more than it saves, and every range when that package
 * cannot be loaded, to the TypeScript tables here: slicing by 16 with 32-bit word loads where the
 * data is 4-byte aligned, slicing by 8 over bytes otherwise.
 *
 * `crc32c(data, crc)` follows the usual "running CRC" convention: pass the previous result to
 * continue over more bytes, 0 to start. `crc32cCombine(a, b, lenB)` gives the CRC of A followed by
 * B from the CRCs of A and B alone, in O(log lenB): that lets two halves of a WAL record that live
 * in different segments be checked without ever holding both halves in memory.
 */

import { createRequire } from 'node:module';

const POLY = 0x82f63b78;

type NativeCrc32c = (input: Buffer, initialState?: number) => number;
/** The native CRC-32C (standard convention: pass and get the finished, inverted value), if loadable. */
const NATIVE: NativeCrc32c | null = (() => {
  if (process.env.WALSHIP_CRC32C === 'js') return null;
  try {
    return (createRequire(import.meta.url)('@node-rs/crc32') as { crc32c: NativeCrc32c }).crc32c;
  } catch {
    return null;
  }
})();
/** From this many bytes on, a range goes to the native implementation. */
const NATIVE_MIN = 512;

/** Which implementation long ranges use (for the benchmark's report). */
export const crc32cImplementation: 'native' | 'js' = NATIVE ? 'native' : 'js';

function nativeRaw(u8: Uint8Array, start: number, end: number, crc: number): number {
  return ~NATIVE!(Buffer.from(u8.buffer, u8.byteOffset + start, end - start), ~crc >>> 0);
}

/** 16 tables of 256 entries, table k at [k * 256]. Table 0 is the classic byte-at-a-time table. */
const T = new Int32Array(16 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n]!;
  for (let k = 1; k < 16; k++) {
    c = T[c & 0xff]! ^ (c >>> 8);
    T[k * 256 + n] = c;
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Raw register update (no pre/post inversion) over u8[start, end). `words` must be an Int32Array
 * over the same memory as `u8` starting at the same byte (u8.byteOffset % 4 === 0), or null.
 * @internal
 */
export function crc32cRaw(u8: Uint8Array, words: Int32Array | null, start: number, end: number, crc: number): number {
  if (NATIVE !== null && end - start >= NATIVE_MIN) return nativeRaw(u8, start, end, crc);
  return crc32cRawJs(u8, words, start, end, crc);
}

/** crc32cRaw in TypeScript only, whatever the length. @internal */
export function crc32cRawJs(u8: Uint8Array, words: Int32Array | null, start: number, end: number, crc: number): number {
  let i = start;
  if (words !== null && end - i >= 32) {
    // Bytes until 4-byte aligned, then 16 bytes at a time.
    while ((i & 3) !== 0) crc = T[(crc ^ u8[i++]!) & 0xff]! ^ (crc >>> 8);
    const n = (end - i) >> 4;
    crc = words16(words, i >> 2, n, crc);
    i += n << 4;
  }
  return bytes8(u8, i, end, crc);
}

/**
 * Like crc32cRaw, for a range starting at a 4-byte aligned offset, with `words` non-null and the
 * machine little-endian (see wordView). Cheaper for the short ranges of small WAL records.
 * @internal
 */
export function crc32cAligned(u8: Uint8Array, words: Int32Array, start: number, end: number, crc: number): number {
  if (NATIVE !== null && end - start >= NATIVE_MIN) return nativeRaw(u8, start, end, crc);
  let w = start >> 2;
  let n = end - start;
  if (n >= 16) {
    const blocks = n >> 4;
    crc = words16(words, w, blocks, crc);
    w += blocks << 2;
    n &= 15;
  }
  if (n >= 8) {
    const a = crc ^ words[w]!;
    const b = words[w + 1]!;
    crc =
      T[1792 + (a & 0xff)]! ^
      T[1536 + ((a >>> 8) & 0xff)]! ^
      T[1280 + ((a >>> 16) & 0xff)]! ^
      T[1024 + (a >>> 24)]! ^
      T[768 + (b & 0xff)]! ^
      T[512 + ((b >>> 8) & 0xff)]! ^
      T[256 + ((b >>> 16) & 0xff)]! ^
      T[b >>> 24]!;
    w += 2;
    n -= 8;
  }
  if (n >= 4) {
    const a = crc ^ words[w]!;
    crc = T[768 + (a & 0xff)]! ^ T[512 + ((a >>> 8) & 0xff)]! ^ T[256 + ((a >>> 16) & 0xff)]! ^ T[a >>> 24]!;
    w++;
    n -= 4;
  }
  let i = w << 2;
  while (n-- > 0) crc = T[(crc ^ u8[i++]!) & 0xff]! ^ (crc >>> 8);
  return crc;
}

function words16(words: Int32Array, w0: number, n: number, crc0: number): number {
  let w = w0;
  let crc = crc0;
  const wEnd = w + n * 4;
  while (w < wEnd) {
    const a = crc ^ words[w]!;
    const b = words[w + 1]!;
    const c = words[w + 2]!;
    const d = words[w + 3]!;
    crc =
      T[3840 + (a & 0xff)]! ^
      T[3584 + ((a >>> 8) & 0xff)]! ^
      T[3328 + ((a >>> 16) & 0xff)]! ^
      T[3072 + (a >>> 24)]! ^
      T[2816 + (b & 0xff)]! ^
      T[2560 + ((b >>> 8) & 0xff)]! ^
      T[2304 + ((b >>> 16) & 0xff)]! ^
      T[2048 + (b >>> 24)]! ^
      T[1792 + (c & 0xff)]! ^
      T[1536 + ((c >>> 8) & 0xff)]! ^
      T[1280 + ((c >>> 16) & 0xff)]! ^
      T[1024 + (c >>> 24)]! ^
      T[768 + (d & 0xff)]! ^
      T[512 + ((d >>> 8) & 0xff)]! ^
      T[256 + ((d >>> 16) & 0xff)]! ^
      T[d >>> 24]!;
    w += 4;
  }
  return crc;
}

function bytes8(u8: Uint8Array, i: number, end: number, crc: number): number {
  const end8 = i + ((end - i) & ~7);
  while (i < end8) {
    const a = crc ^ (u8[i]! | (u8[i + 1]! << 8) | (u8[i + 2]! << 16) | (u8[i + 3]! << 24));
    crc =
      T[1792 + (a & 0xff)]! ^
      T[1536 + ((a >>> 8) & 0xff)]! ^
      T[1280 + ((a >>> 16) & 0xff)]! ^
      T[1024 + (a >>> 24)]! ^
      T[768 + u8[i + 4]!]! ^
      T[512 + u8[i + 5]!]! ^
      T[256 + u8[i + 6]!]! ^
      T[u8[i + 7]!]!;
    i += 8;
  }
  while (i < end) crc = T[(crc ^ u8[i++]!) & 0xff]! ^ (crc >>> 8);
  return crc;
}

/** An Int32Array over the same bytes as `u8`, when it is 4-byte aligned; else null. @internal */
export function wordView(u8: Uint8Array): Int32Array | null {
  if (!LITTLE_ENDIAN || (u8.byteOffset & 3) !== 0) return null;
  return new Int32Array(u8.buffer, u8.byteOffset, u8.length >>> 2);
}

/**
 * CRC-32C of data[start, end), continuing from `crc` (the CRC of the preceding bytes; 0 to start).
 * Returns an unsigned 32-bit value.
 */
export function crc32c(data: Uint8Array, crc = 0, start = 0, end = data.length): number {
  if (start < 0 || end > data.length || start > end) throw new RangeError('crc32c: range out of bounds');
  const words = end - start >= 256 ? wordView(data) : null;
  return ~crc32cRaw(data, words, start, end, ~crc) >>> 0;
}

/** Multiplies two polynomials modulo the CRC polynomial (bit-reflected representation). */
function multModP(a: number, b: number): number {
  if (a === 0) return 0;
  let m = 0x80000000; // x^0
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) modulo P. */
const X2N: number[] = [];
{
  let p = 0x40000000; // x^1
  for (let k = 0; k < 64; k++) {
    X2N.push(p);
    p = multModP(p, p);
  }
}

/** x^(8 * bytes) modulo P. */
function xPow8n(bytes: number): number {
  let p = 0x80000000; // x^0
  let k = 3; // 8 = 2^3
  let n = bytes;
  while (n > 0) {
    if (n % 2 === 1) p = multModP(X2N[k % 64]!, p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/** CRC-32C of A‖B from crcA = crc32c(A), crcB = crc32c(B) and the length of B in bytes. */
export function crc32cCombine(crcA: number, crcB: number, lenB: number): number {
  if (lenB <= 0) return crcA >>> 0;
  return (multModP(xPow8n(lenB), crcA >>> 0) ^ crcB) >>> 0;
}
