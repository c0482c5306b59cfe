/**
 * The scan record (src/wal/scan-record.ts) carries everything of a scan the catalog stores, back
 * to the same values: transaction ends by the thousand (delta-coded), restore points, switches,
 * aborted continuations and the halves of records spanning segments; and through the metadata's
 * packed form (src/archive/envelope.ts).
 */
import { describe, expect, it } from 'vitest';
import { scanSegment, type ScanResult } from '../src/wal/scanner.js';
import { decodeScanRecord, encodeScanRecord, type ScanFacts } from '../src/wal/scan-record.js';
import { packScan, unpackScan } from '../src/archive/envelope.js';
import { WalWriter } from './wal-synth.js';

const MB = 1024 * 1024;
const T0 = 848833705934673;

/** What the catalog keeps of a scan. */
function facts(s: ScanResult): ScanFacts {
  const { startLsn, endLsn, endReason, firstRecordLsn, firstRecordPrev, lastRecordLsn, records, summary, headCont, tailCont, xacts, restorePoints, checkpoints, endOfRecovery, backupEnds, switches, overwrites } = s;
  return { startLsn, endLsn, endReason, firstRecordLsn, firstRecordPrev, lastRecordLsn, records, summary, headCont, tailCont, xacts, restorePoints, checkpoints, endOfRecovery, backupEnds, switches, overwrites };
}
const scan = (seg: { buf: Buffer; startLsn: number }) => scanSegment(seg.buf, { segSize: MB, startLsn: seg.startLsn, pgMajor: 15 });

describe('scan record', () => {
  it('gives back the scan of segments with many transactions, a spanning record, restore points and a switch', async () => {
    const w = new WalWriter(MB, 5 * MB);
    for (let i = 0; i < 3000; i++) w.commit(1000 + i * 3, T0 + i * 1000 - (i % 7) * 5000, Buffer.alloc(i % 50), i % 5 === 0 ? 0x20 : 0x00);
    w.restorePoint('before-migration', T0 + 5_000_000);
    w.fillTo(6 * MB - 4000);
    w.commit(9000, T0 + 7_000_000, Buffer.alloc(10_000)); // spans into the next segment
    w.restorePoint('in-the-second', T0 + 8_000_000);
    w.switchWal();
    const segs = w.segments();
    expect(segs).toHaveLength(2);
    for (const s of segs) {
      const original = scan(s);
      expect(original.xacts.length + original.restorePoints.length).toBeGreaterThan(0);
      const rec = encodeScanRecord(original);
      // Plain JSON, as it is stored.
      const back = decodeScanRecord(JSON.parse(JSON.stringify(rec)), s.startLsn);
      expect(back).toEqual(facts(original));
      expect(await unpackScan(await packScan(original), s.startLsn)).toEqual(facts(original));
    }
    expect(scan(segs[0]!).tailCont).not.toBeNull();
    expect(scan(segs[1]!).headCont).not.toBeNull();
    // Thousands of transaction ends cost a few bytes each.
    expect((await packScan(scan(segs[0]!))).length).toBeLessThan(3000 * 8);
  });

  it('gives back an aborted continuation and an empty segment', () => {
    const w = new WalWriter(MB, 5 * MB);
    w.commit(10, T0);
    w.abortedRecord(20_000, T0 + 10);
    w.commit(11, T0 + 20);
    w.switchWal();
    const [s] = w.segments();
    const original = scan(s!);
    expect(original.overwrites).toHaveLength(1);
    expect(decodeScanRecord(encodeScanRecord(original), s!.startLsn)).toEqual(facts(original));
    const empty = new WalWriter(MB, 7 * MB);
    empty.switchWal();
    const e = scan(empty.segments()[0]!);
    expect(decodeScanRecord(encodeScanRecord(e), 7 * MB)).toEqual(facts(e));
  });

  it('refuses a record of another version', () => {
    expect(() => decodeScanRecord({ v: 2 } as never, 0)).toThrow(/version 2/);
  });
});
