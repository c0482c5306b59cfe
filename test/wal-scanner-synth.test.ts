/**
 * Scanner edge cases on synthetic WAL (test/wal-synth.ts): split headers, records over several
 * segments in every scan order, aborted contrecords, stale tails, corruption, other majors.
 * The real-PostgreSQL comparison with pg_waldump is in wal-scanner.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  completeSpanningRecord,
  applySpan,
  ScanResult,
  ScanOptions,
  SpanResult,
  HeadCont,
  TailCont,
} from '../src/wal/scanner.js';
import { scanSegment } from './helpers/scan-both.js';
import { pgTimeToIso, unixMsToPgTime } from '../src/wal/records.js';
import { WalWriter, i64b, u32b } from './wal-synth.js';

const MB = 1024 * 1024;
const PAGE = 8192;
const T0 = unixMsToPgTime(Date.UTC(2026, 10, 24, 11, 8, 25)) + 934673;

type Seg = { name: string; startLsn: number; buf: Buffer };

function scan(seg: Seg, w: WalWriter, extra: Partial<ScanOptions> = {}): ScanResult {
  return scanSegment(seg.buf, { segSize: w.segSize, startLsn: seg.startLsn, pgMajor: w.pgMajor, verifyBlocks: true, ...extra });
}

/** Scans in order with carry, folding spanning records into the segment where they start. */
function scanWithCarry(segs: Seg[], w: WalWriter): ScanResult[] {
  const out: ScanResult[] = [];
  let carry: TailCont | null = null;
  let owner = -1;
  for (const s of segs) {
    const r = scan(s, w, { carry });
    if (r.spanning?.status === 'complete') out[owner] = applySpan(out[owner]!, r.spanning);
    out.push(r);
    if (r.tailCont !== null && r.tailCont.lsn >= s.startLsn) owner = out.length - 1;
    carry = r.tailCont;
  }
  return out;
}

/** Scans each segment alone (any order), then joins tails and heads with completeSpanningRecord. */
function scanIndependently(segs: Seg[], w: WalWriter, order: number[]): ScanResult[] {
  const res: ScanResult[] = [];
  for (const i of order) res[i] = JSON.parse(JSON.stringify(scan(segs[i]!, w))) as ScanResult; // store round trip
  for (let i = 0; i < segs.length; i++) {
    const t = res[i]!.tailCont;
    if (t === null) continue;
    const heads: (HeadCont | null)[] = [];
    for (let j = i + 1; j < segs.length; j++) {
      heads.push(res[j]!.headCont);
      if (res[j]!.headCont?.ends || res[j]!.headCont === null) break;
    }
    const span = completeSpanningRecord(t, heads, { verifyBlocks: true });
    if (span.status === 'complete') res[i] = applySpan(res[i]!, span);
  }
  return res;
}

function allXacts(rs: ScanResult[]) {
  return rs.flatMap((r) => r.xacts);
}

function commitPreparedMain(time: number, xid: number, opts: { subxacts?: number; stats?: number; statSize?: number; invals?: number } = {}): Buffer {
  const parts: Buffer[] = [i64b(time)];
  let xinfo = 0x10 | 0x80; // TWOPHASE | GID
  const body: Buffer[] = [];
  xinfo |= 0x1;
  body.push(u32b(5), u32b(1663)); // dbinfo
  if (opts.subxacts) {
    xinfo |= 0x2;
    body.push(u32b(opts.subxacts), Buffer.alloc(opts.subxacts * 4, 7));
  }
  if (opts.stats) {
    xinfo |= 0x100;
    body.push(u32b(opts.stats), Buffer.alloc(opts.stats * (opts.statSize ?? 12), 9));
  }
  if (opts.invals) {
    xinfo |= 0x8;
    body.push(u32b(opts.invals), Buffer.alloc(opts.invals * 16, 3));
  }
  body.push(u32b(xid), Buffer.from('gid-1\0'));
  parts.push(u32b(xinfo), ...body);
  return Buffer.concat(parts);
}

describe('scanner on synthetic WAL', () => {
  it('reports records, transaction ends, restore points and switches exactly', () => {
    const w = new WalWriter(MB, 5 * MB);
    w.commit(700, T0);
    w.commit(701, T0 + 1, Buffer.alloc(0), 0x20); // ABORT
    w.restorePoint('before-deploy', T0 + 2);
    for (let i = 0; i < 300; i++) w.commit(702 + i, T0 + 10 + i);
    w.noop(5000); // crosses a page
    w.commit(1002, T0 - 5); // times are not monotonic in WAL
    const sw = w.switchWal();
    const segs = w.segments();
    expect(segs).toHaveLength(1);
    const seen: number[] = [];
    const r = scanSegment(segs[0]!.buf, {
      segSize: MB,
      startLsn: 5 * MB,
      pgMajor: 15,
      onRecord: (lsn) => seen.push(lsn),
    });
    expect(r.corruption).toBeNull();
    expect(r.endReason).toBe('switch');
    expect(r.complete).toBe(true);
    expect(r.endLsn).toBe(6 * MB);
    expect(seen).toEqual(w.written.map((x) => x.lsn));
    expect(r.records).toBe(w.written.length);
    expect(r.firstRecordLsn).toBe(5 * MB + 40);
    expect(r.lastRecordLsn).toBe(sw.lsn);
    expect(r.switches).toEqual([{ lsn: sw.lsn, endLsn: 6 * MB }]);
    expect(r.xacts).toHaveLength(303);
    expect(r.xacts[0]).toEqual({ lsn: w.written[0]!.lsn, endLsn: w.written[0]!.endLsn, xid: 700, kind: 'commit', time: T0 });
    expect(r.xacts[1]!.kind).toBe('abort');
    expect(pgTimeToIso(r.xacts[0]!.time)).toBe('2026-11-24T11:08:25.934673Z');
    expect(r.restorePoints).toEqual([{ lsn: w.written[2]!.lsn, endLsn: w.written[2]!.endLsn, name: 'before-deploy', time: T0 + 2 }]);
    expect(r.summary).toEqual({ commits: 302, aborts: 1, firstTime: T0, lastTime: T0 - 5, minTime: T0 - 5, maxTime: T0 + 309 });
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });

  for (const back of [8, 16, 24, 32]) {
    it(`attributes a commit whose header starts ${back} bytes before the segment end exactly once, in any scan order`, () => {
      const w = new WalWriter(MB, 5 * MB);
      w.commit(1, T0);
      w.fillTo(6 * MB - back);
      const c = w.commit(4242, T0 + 77, Buffer.alloc(40, 1), 0x80 | 0x00); // HAS_INFO: xinfo 0x01010101 (no two-phase)
      w.commit(4243, T0 + 78);
      w.switchWal();
      const segs = w.segments();
      expect(segs).toHaveLength(2);
      expect(c.lsn).toBe(6 * MB - back);
      for (const rs of [scanWithCarry(segs, w), scanIndependently(segs, w, [0, 1]), scanIndependently(segs, w, [1, 0])]) {
        expect(rs.every((r) => r.corruption === null && r.complete)).toBe(true);
        const mine = rs[0]!.xacts.filter((x) => x.xid === 4242);
        expect(mine).toEqual([{ lsn: c.lsn, endLsn: c.endLsn, xid: 4242, kind: 'commit', time: T0 + 77 }]);
        expect(rs[1]!.xacts.map((x) => x.xid)).toEqual([4243]);
        expect(allXacts(rs).map((x) => x.xid)).toEqual([1, 4242, 4243]);
        expect(rs[0]!.records + rs[1]!.records).toBe(w.written.length - (back > 16 ? 0 : 0));
        expect(rs[1]!.firstRecordPrev).toBe(c.lsn);
      }
      const r0 = scan(segs[0]!, w);
      expect(r0.tailCont).not.toBeNull();
      expect(r0.tailCont!.have).toBe(back);
      expect(r0.endLsn).toBe(c.lsn); // the end of the last complete record
      expect(JSON.stringify(r0.tailCont).length).toBeLessThan(600);
    });
  }

  for (const back of [8, 16]) {
    it(`reads a record whose header is split by a page boundary (${back} bytes on the first page)`, () => {
      const w = new WalWriter(MB, 5 * MB);
      w.fillTo(5 * MB + 3 * PAGE - back);
      const c = w.commit(77, T0);
      const rp1 = w.restorePoint('rp', T0 + 1);
      w.fillTo(5 * MB + 5 * PAGE - back);
      const rp = w.restorePoint('rp-split', T0 + 2);
      w.switchWal();
      const r = scan(w.segments()[0]!, w);
      expect(r.corruption).toBeNull();
      expect(r.records).toBe(w.written.length);
      expect(r.xacts).toEqual([{ lsn: c.lsn, endLsn: c.endLsn, xid: 77, kind: 'commit', time: T0 }]);
      expect(r.restorePoints.map((x) => [x.name, x.lsn])).toEqual([
        ['rp', rp1.lsn],
        ['rp-split', rp.lsn],
      ]);
    });
  }

  it('joins a record spanning three segments (bigger than a segment) whatever the order', () => {
    const w = new WalWriter(MB, 5 * MB);
    w.commit(10, T0);
    const big = w.noop(2.5 * MB);
    const after = w.commit(11, T0 + 1);
    w.switchWal();
    const segs = w.segments();
    expect(segs).toHaveLength(3);
    const mid = scan(segs[1]!, w);
    expect(mid.records).toBe(0);
    expect(mid.headCont!.ends).toBe(false);
    expect(mid.endReason).toBe('segment-end');
    expect(mid.complete).toBe(true);
    expect(JSON.stringify(mid).length).toBeLessThan(2000);
    for (const order of [
      [0, 1, 2],
      [2, 1, 0],
      [1, 2, 0],
      [2, 0, 1],
    ]) {
      const rs = scanIndependently(segs, w, order);
      expect(rs[0]!.records).toBe(2); // commit 10 + the big record
      expect(rs[0]!.lastRecordLsn).toBe(big.lsn);
      expect(rs[1]!.records).toBe(0);
      expect(rs[2]!.records).toBe(2); // commit 11 + switch
      expect(rs[2]!.firstRecordLsn).toBe(after.lsn);
      expect(allXacts(rs).map((x) => x.xid)).toEqual([10, 11]);
    }
    const carried = scanWithCarry(segs, w);
    expect(carried[1]!.spanning!.status).toBe('incomplete');
    expect(carried[2]!.spanning).toMatchObject({ status: 'complete', lsn: big.lsn, totLen: big.totLen });
    expect(carried[0]!.records).toBe(2);
    // Partial joins say so.
    const t = scan(segs[0]!, w).tailCont!;
    const part = completeSpanningRecord(t, [scan(segs[1]!, w).headCont]);
    expect(part.status).toBe('incomplete');
    const rest = completeSpanningRecord((part as Extract<SpanResult, { status: 'incomplete' }>).tail, [scan(segs[2]!, w).headCont]);
    expect(rest).toMatchObject({ status: 'complete', lsn: big.lsn });
  });

  it('decodes a big COMMIT PREPARED spanning segments; out of order it may ask for a rescan with carry', () => {
    const w = new WalWriter(MB, 5 * MB);
    w.fillTo(6 * MB - 4000);
    const main = commitPreparedMain(T0 + 9, 9999, { subxacts: 50_000, invals: 10 });
    const cp = w.record(1, 0x30 | 0x80, 0, main);
    w.commit(10_000, T0 + 10);
    w.switchWal();
    const segs = w.segments();
    const carried = scanWithCarry(segs, w);
    expect(carried[0]!.xacts).toEqual([{ lsn: cp.lsn, endLsn: cp.endLsn, xid: 9999, kind: 'commit_prepared', time: T0 + 9 }]);
    const t = scan(segs[0]!, w).tailCont!;
    expect(t.interesting).toBe(true);
    expect(Buffer.from(t.bytes, 'base64').length).toBeLessThanOrEqual(4000);
    const span = completeSpanningRecord(t, [scan(segs[1]!, w).headCont]);
    expect(span.status).toBe('needs-rescan');
    // A big plain COMMIT (50k subtransactions) keeps only what decoding reads, and joins out of order.
    const w3 = new WalWriter(MB, 5 * MB);
    w3.fillTo(6 * MB - 4000);
    const subx = Buffer.concat([u32b(0x2), u32b(50_000), Buffer.alloc(200_000, 5)]); // xinfo HAS_SUBXACTS
    const bigCommit = w3.commit(777, T0 + 3, subx, 0x80);
    w3.switchWal();
    const t3 = scan(w3.segments()[0]!, w3).tailCont!;
    expect(Buffer.from(t3.bytes, 'base64').length).toBeLessThanOrEqual(64);
    expect(JSON.stringify(t3).length).toBeLessThan(400);
    const rs3 = scanIndependently(w3.segments(), w3, [1, 0]);
    expect(rs3[0]!.xacts).toEqual([{ lsn: bigCommit.lsn, endLsn: bigCommit.endLsn, xid: 777, kind: 'commit', time: T0 + 3 }]);
    // A small one joins out of order without a rescan.
    const w2 = new WalWriter(MB, 5 * MB);
    w2.fillTo(6 * MB - 16);
    const cp2 = w2.record(1, 0x40 | 0x80, 0, commitPreparedMain(T0, 31337, { subxacts: 3, invals: 4 })); // ABORT_PREPARED
    w2.switchWal();
    const rs = scanIndependently(w2.segments(), w2, [1, 0]);
    expect(rs[0]!.xacts).toEqual([{ lsn: cp2.lsn, endLsn: cp2.endLsn, xid: 31337, kind: 'abort_prepared', time: T0 }]);
  });

  it('drops a record PostgreSQL aborted (OVERWRITE_CONTRECORD) inside a segment', () => {
    const w = new WalWriter(MB, 5 * MB);
    const before = w.commit(1, T0);
    w.fillTo(5 * MB + 2 * PAGE - 200);
    const lastGood = w.commit(2, T0 + 1);
    const { abortedLsn, overwrite } = w.abortedRecord(3000, T0 + 2);
    const next = w.commit(3, T0 + 3);
    w.switchWal();
    const r = scan(w.segments()[0]!, w);
    expect(r.corruption).toBeNull();
    expect(r.endReason).toBe('switch');
    expect(r.overwrites).toEqual([{ lsn: overwrite.lsn, endLsn: overwrite.endLsn, overwrittenLsn: abortedLsn, time: T0 + 2 }]);
    expect(r.xacts.map((x) => x.xid)).toEqual([1, 2, 3]);
    expect(r.records).toBe(w.written.length); // the aborted record is not one of them
    expect(overwrite.lsn).toBe(5 * MB + 2 * PAGE + 24);
    expect(before.lsn).toBeLessThan(lastGood.lsn);
    expect(next.lsn).toBeGreaterThan(overwrite.lsn);
  });

  it('drops an aborted record whose continuation was in the next segment, in any order', () => {
    const w = new WalWriter(MB, 5 * MB);
    w.fillTo(6 * MB - 1000);
    const last = w.commit(1, T0);
    const { abortedLsn, overwrite } = w.abortedRecord(5000, T0 + 2);
    w.commit(2, T0 + 3);
    w.switchWal();
    const segs = w.segments();
    expect(abortedLsn).toBeLessThan(6 * MB);
    expect(overwrite.lsn).toBe(6 * MB + 40);
    const s0 = scan(segs[0]!, w);
    const s1 = scan(segs[1]!, w);
    expect(s0.tailCont!.lsn).toBe(abortedLsn);
    expect(s1.headCont!.overwritten).toBe(true);
    expect(completeSpanningRecord(s0.tailCont!, [s1.headCont])).toEqual({ status: 'aborted', lsn: abortedLsn });
    expect(s1.firstRecordPrev).toBe(last.lsn);
    const carried = scanWithCarry(segs, w);
    expect(carried[1]!.spanning).toEqual({ status: 'aborted', lsn: abortedLsn });
    expect(carried[1]!.corruption).toBeNull();
    expect(allXacts(carried).map((x) => x.xid)).toEqual([1, 2]);
  });

  it('reports a flipped byte as corruption at that record (or as the end in partial mode)', () => {
    const w = new WalWriter(MB, 5 * MB);
    for (let i = 0; i < 50; i++) w.commit(100 + i, T0 + i);
    const victim = w.written[20]!;
    const bigOne = w.noop(20_000);
    w.commit(500, T0);
    w.switchWal();
    const seg = w.segments()[0]!;
    const flip = (off: number) => {
      const b = Buffer.from(seg.buf);
      b[off - 5 * MB]! ^= 0x10;
      return { ...seg, buf: b };
    };
    const r = scan(flip(victim.lsn + 26), w);
    expect(r.corruption).toEqual({ lsn: victim.lsn, reason: expect.stringContaining('CRC') });
    expect(r.endReason).toBe('corruption');
    expect(r.complete).toBe(false);
    expect(r.records).toBe(20);
    expect(r.endLsn).toBe(w.written[19]!.endLsn);
    const rp = scan(flip(victim.lsn + 26), w, { partial: true });
    expect(rp.corruption).toBeNull();
    expect(rp.endReason).toBe('bad-record');
    // Inside a record that crosses pages, past the first page.
    const r2 = scan(flip(bigOne.lsn + 15_000), w);
    expect(r2.corruption?.lsn).toBe(bigOne.lsn);
    // A flipped byte in xl_tot_len of a record whose xl_prev is right.
    const r3 = scan(flip(victim.lsn + 1), w);
    expect(r3.corruption?.lsn).toBe(victim.lsn);
  });

  it('takes stale tails (recycled pages, stale records, zeros) as the end of valid data, not corruption', () => {
    const old = new WalWriter(MB, 2 * MB); // what the recycled file held before
    for (let i = 0; i < 3000; i++) old.commit(9000 + i, T0 - 1e9);
    const w = new WalWriter(MB, 5 * MB);
    for (let i = 0; i < 200; i++) w.commit(100 + i, T0 + i);
    const lastRec = w.written[w.written.length - 1]!;
    const seg = w.segments()[0]!;
    const endOff = lastRec.endLsn - 5 * MB;
    const oldBuf = old.segments()[0]!.buf;
    // 1. Pages after the current one come from the old file: pageaddr mismatch.
    const b1 = Buffer.from(seg.buf);
    const nextPage = Math.ceil(endOff / PAGE) * PAGE;
    oldBuf.copy(b1, nextPage, nextPage);
    const r1 = scan({ ...seg, buf: b1 }, w, { partial: true });
    expect(r1.endReason).toBe('zero'); // the rest of the current page is zero
    expect(r1.endLsn).toBe(lastRec.endLsn);
    // 2. A stale record (valid CRC, old xl_prev) right after the last one.
    const b2 = Buffer.from(b1);
    const staleRec = WalWriter.build(1, 0, 9999, 2 * MB + 40, i64b(T0 - 1e9));
    staleRec.copy(b2, endOff);
    for (const partial of [true, false]) {
      const r2 = scan({ ...seg, buf: b2 }, w, { partial });
      expect(r2.endReason).toBe('prev-mismatch');
      expect(r2.corruption).toBeNull();
      expect(r2.records).toBe(200);
      expect(r2.xacts).toHaveLength(200);
    }
    // 3. The current page filled to its end, then an old page.
    const w3 = new WalWriter(MB, 5 * MB);
    w3.commit(1, T0);
    w3.fillTo(5 * MB + 4 * PAGE + 24);
    const b3 = Buffer.from(w3.segments()[0]!.buf);
    oldBuf.copy(b3, 4 * PAGE, 4 * PAGE);
    const r3 = scanSegment(b3, { segSize: MB, startLsn: 5 * MB, pgMajor: 15, partial: true });
    expect(r3.endReason).toBe('page-mismatch');
    expect(r3.endLsn).toBe(5 * MB + 4 * PAGE);
    expect(r3.corruption).toBeNull();
    // 4. A record crossing into a stale page is not counted.
    const w4 = new WalWriter(MB, 5 * MB);
    w4.commit(1, T0);
    w4.fillTo(5 * MB + 4 * PAGE - 104);
    const crossing = w4.noop(300);
    const b4 = Buffer.from(w4.segments()[0]!.buf);
    oldBuf.copy(b4, 4 * PAGE, 4 * PAGE);
    const r4 = scanSegment(b4, { segSize: MB, startLsn: 5 * MB, pgMajor: 15 });
    expect(r4.endReason).toBe('page-mismatch');
    expect(r4.endLsn).toBe(crossing.lsn);
    expect(r4.tailCont).toBeNull();
    expect(r4.corruption).toBeNull();
  });

  it('walks block headers by major version (image compression flags, TOPLEVEL_XID from 14)', () => {
    // block 0: HAS_IMAGE | HAS_DATA, own relation; image 100 bytes, "compressed with a hole"; block 1: SAME_REL, data.
    const blockHeaders = (compressFlag: number, withToplevel: boolean) =>
      Buffer.concat([
        Buffer.from([253, 1, 0]), // ORIGIN
        ...(withToplevel ? [Buffer.from([252]), u32b(555)] : []),
        Buffer.from([0, 0x30]),
        Buffer.from([10, 0]), // data_length 10
        Buffer.from([100, 0, 0x40, 0, 0x01 | compressFlag]), // length, hole_offset, bimg_info
        Buffer.from([0x00, 0x10]), // hole_length (compressed + hole)
        Buffer.alloc(12, 1), // relfilelocator
        u32b(7),
        Buffer.from([1, 0xa0, 4, 0]), // id 1, HAS_DATA|SAME_REL, 4 bytes
        u32b(8),
      ]);
    const blockData = Buffer.alloc(100 + 10 + 4, 0xee);
    for (const [major, flag, toplevel, ok] of [
      [13, 0x02, false, true],
      [14, 0x02, true, true],
      [15, 0x04, true, true],
      [16, 0x08, true, true],
      [17, 0x10, true, true],
      [18, 0x04, true, true],
      [15, 0x02, true, false], // 0x02 is APPLY in 15+: no hole_length, lengths do not add up
      [13, 0x02, true, false], // no TOPLEVEL_XID block id in 13
    ] as const) {
      const w = new WalWriter(MB, 5 * MB, major);
      w.commit(1, T0);
      w.record(10, 0x00, 5, Buffer.from('main-data'), { blockHeaders: blockHeaders(flag, toplevel), blockData });
      // A commit carrying an origin header: main data found after it.
      w.record(1, 0x00, 6, i64b(T0 + 6), { blockHeaders: Buffer.from([253, 1, 0]) });
      w.switchWal();
      const r = scan(w.segments()[0]!, w);
      if (ok) {
        expect(r.corruption, `${major}`).toBeNull();
        expect(r.xacts.map((x) => [x.xid, x.time])).toEqual([
          [1, T0],
          [6, T0 + 6],
        ]);
      } else {
        expect(r.corruption, `${major} flag ${flag}`).not.toBeNull();
      }
    }
  });

  it('finds the prepared xid after dropped-stats items of the right size for the major', () => {
    for (const [major, size] of [
      [15, 12],
      [17, 12],
      [18, 16],
    ] as const) {
      const w = new WalWriter(MB, 5 * MB, major);
      w.record(1, 0x30 | 0x80, 0, commitPreparedMain(T0, 4711, { subxacts: 2, stats: 3, statSize: size, invals: 1 }));
      w.switchWal();
      const r = scan(w.segments()[0]!, w);
      expect(r.corruption).toBeNull();
      expect(r.xacts.map((x) => [x.kind, x.xid])).toEqual([['commit_prepared', 4711]]);
    }
  });

  it('reads checkpoints, end of recovery and backup end records', () => {
    const w = new WalWriter(MB, 5 * MB, 16, 2);
    const cp = Buffer.alloc(88);
    cp.writeUInt32LE(5 * MB + 40, 0); // redo
    cp.writeUInt32LE(2, 8);
    cp.writeUInt32LE(1, 12);
    cp.writeBigInt64LE(1_795_000_000n, 64);
    const online = w.record(0, 0x10, 0, cp);
    const shut = w.record(0, 0x00, 0, cp);
    const eor = Buffer.concat([i64b(T0), u32b(2), u32b(1), u32b(3)]);
    const e = w.record(0, 0x90, 0, eor);
    const be = w.record(0, 0x50, 0, Buffer.concat([u32b(4 * MB + 40), u32b(0)]));
    w.switchWal();
    const r = scan(w.segments()[0]!, w);
    const time = 1_795_000_000 * 1e6 - 946_684_800_000_000;
    expect(r.checkpoints).toEqual([
      { lsn: online.lsn, endLsn: online.endLsn, redo: 5 * MB + 40, time, online: true, tli: 2, prevTli: 1 },
      { lsn: shut.lsn, endLsn: shut.endLsn, redo: 5 * MB + 40, time, online: false, tli: 2, prevTli: 1 },
    ]);
    expect(r.endOfRecovery).toEqual([{ lsn: e.lsn, endLsn: e.endLsn, time: T0, newTli: 2, prevTli: 1 }]);
    expect(r.backupEnds).toEqual([{ lsn: be.lsn, endLsn: be.endLsn, backupStartLsn: 4 * MB + 40 }]);
    expect(r.pageTli).toBe(2);
  });

  it('refuses pieces that do not belong together, and a wrong major', () => {
    const w = new WalWriter(MB, 5 * MB);
    w.fillTo(6 * MB - 104);
    w.noop(3000);
    w.fillTo(7 * MB - 200);
    w.noop(5000);
    w.switchWal();
    const segs = w.segments();
    const t0 = scan(segs[0]!, w).tailCont!;
    const h2 = scan(segs[2]!, w).headCont!;
    expect(completeSpanningRecord(t0, [h2]).status).toBe('invalid');
    const h1 = scan(segs[1]!, w).headCont!;
    const tampered = { ...h1, crc: (h1.crc ^ 1) >>> 0 };
    expect(completeSpanningRecord(t0, [tampered])).toMatchObject({ status: 'invalid', reason: expect.stringContaining('CRC') });
    expect(completeSpanningRecord(t0, [h1]).status).toBe('complete');
    expect(completeSpanningRecord(t0, [null]).status).toBe('invalid');
    const wrong = scanSegment(segs[0]!.buf, { segSize: MB, startLsn: 5 * MB, pgMajor: 16 });
    expect(wrong.corruption?.reason).toMatch(/magic/);
    expect(() => scanSegment(segs[0]!.buf, { segSize: MB, startLsn: 5 * MB + 8, pgMajor: 15 })).toThrow(RangeError);
  });

  it('handles an unaligned buffer and a truncated file', () => {
    const w = new WalWriter(MB, 5 * MB);
    for (let i = 0; i < 1000; i++) w.commit(i + 1, T0 + i);
    const seg = w.segments()[0]!;
    const raw = Buffer.alloc(MB + 1);
    seg.buf.copy(raw, 1);
    const r = scanSegment(raw.subarray(1), { segSize: MB, startLsn: 5 * MB, pgMajor: 15 });
    expect(r.xacts).toHaveLength(1000);
    expect(r.endReason).toBe('zero');
    const t = scanSegment(seg.buf.subarray(0, 3 * PAGE + 100), { segSize: MB, startLsn: 5 * MB, pgMajor: 15 });
    expect(t.endReason).toBe('truncated');
    expect(t.complete).toBe(false);
    expect(t.tailCont).toBeNull();
    expect(t.xacts.length).toBeGreaterThan(500);
    expect(t.xacts.length).toBeLessThan(1000);
  });
});
