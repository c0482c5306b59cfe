/**
 * Whether one segment continues another (src/wal/continuity.ts), on synthetic WAL: every pair of
 * consecutive segments one server wrote continues, records spanning one or several segments,
 * switches and aborted continuations included; segments of two servers that share a system
 * identifier and diverge do not, wherever they part.
 */
import { describe, expect, it } from 'vitest';
import { scanSegment } from '../src/wal/scanner.js';
import { discontinuity } from '../src/wal/continuity.js';
import { WalWriter } from './wal-synth.js';

const MB = 1024 * 1024;
const T0 = 848833705934673;
const scan = (s: { buf: Buffer; startLsn: number }) => scanSegment(s.buf, { segSize: MB, startLsn: s.startLsn, pgMajor: 15 });
const pairs = (w: WalWriter) => {
  const scans = w.segments().map(scan);
  return scans.slice(1).map((next, i) => discontinuity(scans[i]!, next));
};

describe('continuity of consecutive segments', () => {
  it('holds for every pair one server wrote: records on the boundary, spanning one or three segments, a switch, an aborted record', () => {
    const w = new WalWriter(MB, 5 * MB);
    w.commit(10, T0);
    w.fillTo(6 * MB + 40); // a record ends exactly at the boundary
    w.commit(11, T0 + 1);
    w.fillTo(7 * MB - 4000);
    w.commit(12, T0 + 2, Buffer.alloc(10_000)); // spans 6 -> 7
    w.commit(13, T0 + 3, Buffer.alloc(Math.round(2.5 * MB))); // spans 7 -> 8 -> 9 -> 10
    w.commit(14, T0 + 4);
    w.switchWal(); // 10 ends with a switch
    w.commit(15, T0 + 5);
    w.fillTo(11 * MB + 8192 - 3000);
    w.abortedRecord(20_000, T0 + 6); // begun in 11, overwritten on the next page
    w.fillTo(12 * MB - 2000);
    w.abortedRecord(20_000, T0 + 7); // begun in 11, overwritten at the start of 12
    w.commit(16, T0 + 8);
    w.switchWal();
    const breaks = pairs(w);
    expect(breaks.length).toBeGreaterThanOrEqual(6);
    expect(breaks).toEqual(breaks.map(() => null));
  });

  it('fails for two servers that diverge, wherever they part: a record of its own, a spanning record, a continuation', () => {
    // Two writers from one start; the second writes other records from some point on.
    const twins = (diverge: (w: WalWriter) => void) => {
      const a = new WalWriter(MB, 5 * MB);
      const b = new WalWriter(MB, 5 * MB);
      for (const w of [a, b]) w.commit(10, T0);
      a.commit(11, T0 + 1);
      a.fillTo(6 * MB - 3000);
      a.commit(12, T0 + 2, Buffer.alloc(8000));
      a.commit(13, T0 + 3);
      a.switchWal();
      diverge(b);
      b.switchWal();
      return { a: a.segments().map(scan), b: b.segments().map(scan) };
    };
    // Other records before the boundary: the next segment's first record points elsewhere.
    const own = twins((b) => {
      b.commit(21, T0 + 1, Buffer.alloc(123));
      b.fillTo(6 * MB + 40);
      b.commit(22, T0 + 2);
    });
    expect(discontinuity(own.a[0]!, own.b[1]!)?.reason).toMatch(/it starts with a record of its own, but the archived segment before it ends inside a record/);
    expect(discontinuity(own.b[0]!, own.a[1]!)?.reason).toMatch(/it continues a record, but the archived segment before it ends with a complete record/);
    // Both end and start with records of their own, but the last ones are at other places: the
    // first record of the next segment points back to where the other server's last record was.
    const ending = (fill: number, extra: number) => {
      const w = new WalWriter(MB, 5 * MB);
      w.commit(10, T0);
      w.fillTo(6 * MB - fill);
      w.commit(31, T0 + 1, Buffer.alloc(extra));
      w.fillTo(6 * MB + 40);
      w.commit(40, T0 + 2);
      w.switchWal();
      return w.segments().map(scan);
    };
    const [x, y] = [ending(1000, 0), ending(2000, 100)];
    expect(discontinuity(x[0]!, x[1]!)).toBeNull();
    expect(discontinuity(x[0]!, y[1]!)?.reason).toMatch(/its first record points back to 0\/[0-9A-F]+, but the archived history's last record before it is at 0\/[0-9A-F]+/);
    // A record spanning the boundary at the same place, with other bytes: its CRC tells.
    const span = twins((b) => {
      b.commit(11, T0 + 1);
      b.fillTo(6 * MB - 3000);
      b.commit(12, T0 + 2, Buffer.alloc(8000, 0x55));
      b.commit(13, T0 + 3);
    });
    expect(discontinuity(span.a[0]!, span.b[1]!)?.reason).toMatch(/the record spanning into it does not continue the archived one/);
    expect(discontinuity(span.a[0]!, span.a[1]!)).toBeNull();
  });
});
