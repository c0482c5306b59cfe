import { describe, expect, it } from 'vitest';
import { validateSegment } from '../src/wal/page.js';
import { parseWalFileName } from '../src/wal/names.js';

const SEG = 1024 * 1024;
const PAGE = 8192;

/** A synthetic segment whose page headers are what the server writes (records are not needed here). */
function segment(name: string, opts: { magic?: number; sysid?: bigint; zeroFrom?: number; tli?: number } = {}): Buffer {
  const f = parseWalFileName(name)!;
  const segNo = parseInt(f.logSeg!.slice(8), 16) + parseInt(f.logSeg!.slice(0, 8), 16) * 4096;
  const buf = Buffer.alloc(SEG);
  for (let off = 0; off < SEG; off += PAGE) {
    if (opts.zeroFrom !== undefined && off / PAGE >= opts.zeroFrom) break;
    buf.writeUInt16LE(opts.magic ?? 0xd110, off);
    buf.writeUInt16LE(off === 0 ? 0x2 : 0x1, off + 2);
    buf.writeUInt32LE(opts.tli ?? f.timeline, off + 4);
    const addr = segNo * SEG + off;
    buf.writeUInt32LE(addr % 2 ** 32, off + 8);
    buf.writeUInt32LE(Math.floor(addr / 2 ** 32), off + 12);
    if (off === 0) {
      buf.writeBigUInt64LE(opts.sysid ?? 7000000000000000001n, 24);
      buf.writeUInt32LE(SEG, 32);
      buf.writeUInt32LE(PAGE, 36);
    }
  }
  return buf;
}

const check = (buf: Buffer, name: string) => validateSegment(buf, parseWalFileName(name)!);

describe('segment validation', () => {
  it('accepts a well-formed segment and reports the cluster', () => {
    const info = check(segment('000000010000000000000005'), '000000010000000000000005');
    expect(info).toMatchObject({ systemIdentifier: '7000000000000000001', pgMajor: 15, segSize: SEG, segNo: 5, startLsn: 5 * SEG, zeroPages: 0 });
  });

  it('knows the page magic of PostgreSQL 13 to 18', () => {
    const majors = [0xd106, 0xd10d, 0xd110, 0xd113, 0xd116, 0xd118].map((m) => check(segment('000000010000000000000001', { magic: m }), '000000010000000000000001').pgMajor);
    expect(majors).toEqual([13, 14, 15, 16, 17, 18]);
    expect(() => check(segment('000000010000000000000001', { magic: 0xd120 }), '000000010000000000000001')).toThrow(/unknown page magic 0xD120/);
  });

  it('tolerates the all-zero tail after a WAL switch', () => {
    const info = check(segment('000000010000000000000002', { zeroFrom: 10 }), '000000010000000000000002');
    expect(info.zeroPages).toBe(128 - 10);
    expect(info.validBytes).toBe(10 * PAGE);
  });

  it('refuses data after an all-zero page in a completed segment, but ends a .partial there', () => {
    const buf = segment('000000010000000000000002');
    buf.fill(0, 20 * PAGE, 21 * PAGE);
    expect(() => check(buf, '000000010000000000000002')).toThrow(/follows an all-zero page/);
    expect(check(buf, '000000010000000000000002.partial').validBytes).toBe(20 * PAGE);
  });

  it('treats stale pages of a .partial as the end of valid data', () => {
    const stale = segment('000000010000000000000003');
    const old = segment('000000010000000000000001');
    old.copy(stale, 40 * PAGE, 40 * PAGE);
    expect(() => check(stale, '000000010000000000000003')).toThrow(/page 40 claims address 0\/150000, expected 0\/350000/);
    expect(check(stale, '000000010000000000000003.partial').validBytes).toBe(40 * PAGE);
  });

  it('refuses truncation, padding, wrong names and timelines, bad flags', () => {
    const good = segment('000000010000000000000004');
    expect(() => check(good.subarray(0, SEG / 2), '000000010000000000000004')).toThrow(/truncated/);
    expect(() => check(good.subarray(0, 20), '000000010000000000000004')).toThrow(/too short/);
    expect(() => check(Buffer.concat([good, Buffer.alloc(PAGE)]), '000000010000000000000004')).toThrow(/padded/);
    expect(() => check(good, '000000010000000000000009')).toThrow(/the name says 0\/900000/);
    expect(() => check(segment('000000020000000000000004'), '000000010000000000000004')).toThrow(/timeline 2, later than the name's timeline 1/);
    // The first segment of a new timeline may carry the parent's timeline.
    expect(check(segment('000000020000000000000004', { tli: 1 }), '000000020000000000000004').segNo).toBe(4);
    const flags = Buffer.from(good);
    flags.writeUInt16LE(0x21, 3 * PAGE + 2);
    expect(() => check(flags, '000000010000000000000004')).toThrow(/page 3 .* unknown flag bits 0x21/);
    const nolong = Buffer.from(good);
    nolong.writeUInt16LE(0, 2);
    expect(() => check(nolong, '000000010000000000000004')).toThrow(/lacks the long header/);
    const size = Buffer.from(good);
    size.writeUInt32LE(3 * 1024 * 1024, 32);
    expect(() => check(size, '000000010000000000000004')).toThrow(/implausible segment size/);
  });
});
