/**
 * The scan store on synthetic WAL (test/wal-synth.ts): records spanning segments are stored
 * exactly once whatever order the segments are pushed in, re-pushes change nothing, deleting a
 * file's row removes its records, and the planner input reads it all back.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Catalog } from '../src/catalog/catalog.js';
import { storeScan, storedEvents } from '../src/catalog/scan-store.js';
import { scanArchivedFile } from '../src/wal/scan-file.js';
import { loadPlannerInput } from '../src/recovery/catalog-input.js';
import { parseWalFileName, segmentName } from '../src/wal/names.js';
import { validateSegment } from '../src/wal/page.js';
import { unixMsToPgTime } from '../src/wal/records.js';
import { formatIso, isoToMicros, pgTimeToMicros } from '../src/time.js';
import { planRecovery } from '../src/recovery/plan.js';
import { computeRanges } from '../src/recovery/ranges.js';
import { restorableInput } from '../src/recovery/restore-plan.js';
import type { PlannerInput } from '../src/recovery/input.js';
import { WalshipError } from '../src/errors.js';
import { WalWriter, i64b, u32b } from './wal-synth.js';

const MB = 1024 * 1024;
const T0 = unixMsToPgTime(Date.UTC(2026, 10, 24, 11, 8, 25));

let dir: string;
let cat: Catalog;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'walship-scanstore-'));
  cat = Catalog.open(join(dir, 'c.db'))!;
  cat.bindRepository('/repo', { systemIdentifier: '7000000000000000001', pgMajor: 15, walSegmentSize: MB, createdAt: 'x' });
});
afterEach(() => {
  cat.close();
  rmSync(dir, { recursive: true, force: true });
});

type Seg = { name: string; startLsn: number; buf: Buffer };

function push(seg: Seg, name = seg.name): void {
  const file = parseWalFileName(name)!;
  const info = validateSegment(seg.buf, file);
  const scan = scanArchivedFile(seg.buf, file, info);
  cat.write('test', () => {
    cat.upsertWalFile({
      name,
      kind: file.kind,
      timeline: file.timeline,
      seg_no: info.segNo,
      start_lsn: info.startLsn,
      end_lsn: info.startLsn + info.segSize,
      raw_size: seg.buf.length,
      stored_size: 1,
      sha256: 'x',
      body_sha256: null,
      compression: 'zstd',
      object_key: name,
      pushed_at: 'now',
      scan_record: null,
    });
    storeScan(cat, file, info, scan, seg.buf);
  });
}

/** The error scanArchivedFile refuses `buf`, named `name`, with (fails the test when it accepts it). */
function refusal(buf: Buffer, name: string): WalshipError {
  const file = parseWalFileName(name)!;
  try {
    scanArchivedFile(buf, file, validateSegment(buf, file));
  } catch (e) {
    expect(e).toBeInstanceOf(WalshipError);
    return e as WalshipError;
  }
  throw new Error(`${name} was accepted`);
}

/** Every archived segment the planner input holds, by timeline and number. */
const allSegments = (input: PlannerInput) => input.segments.stretches().flatMap((r) => input.segments.segments(r.timeline, r.firstSeg, r.lastSeg));
const xids = (name: string) => storedEvents(cat, name).xacts.map((x) => x.xid);
const allXids = () => (cat.db.prepare('SELECT xid FROM wal_xacts ORDER BY lsn').all() as { xid: number }[]).map((r) => r.xid);

function commitPreparedMain(time: number, xid: number, subxacts: number): Buffer {
  // xl_xact_commit (xact_time) + xinfo (HAS_SUBXACTS | HAS_TWOPHASE) + subxacts + twophase xid
  const xinfo = 0x02 | 0x10;
  const sub = Buffer.alloc(4 + subxacts * 4);
  sub.writeInt32LE(subxacts, 0);
  return Buffer.concat([i64b(time), u32b(xinfo), sub, u32b(xid)]);
}

describe('scan store', () => {
  it('stores a commit that spans two segments once, in either push order', () => {
    for (const order of [
      [0, 1],
      [1, 0],
    ]) {
      cat.db.exec('DELETE FROM wal_files');
      const w = new WalWriter(MB, 5 * MB);
      w.commit(10, T0);
      w.fillTo(6 * MB - 16);
      const span = w.commit(11, T0 + 1_000_000, Buffer.alloc(200));
      w.commit(12, T0 + 2_000_000);
      w.switchWal();
      const segs = w.segments();
      for (const i of order) push(segs[i]!);
      expect(xids(segs[0]!.name)).toEqual([10, 11]);
      expect(xids(segs[1]!.name)).toEqual([12]);
      expect(storedEvents(cat, segs[0]!.name).tailState).toBe('complete');
      const input = loadPlannerInput(cat);
      const s0 = allSegments(input).find((s) => s.name === segs[0]!.name)!;
      expect(s0.xacts).toEqual({ count: 2, firstTime: pgTimeToMicros(T0), lastTime: pgTimeToMicros(T0 + 1_000_000), minTime: pgTimeToMicros(T0), maxTime: pgTimeToMicros(T0 + 1_000_000) });
      expect(input.xacts.inSegment(1, 5).map((x) => [x.xid, x.lsn, x.endLsn])).toEqual([
        [10, w.written[0]!.lsn, w.written[0]!.endLsn],
        [11, span.lsn, span.endLsn],
      ]);
      // Re-pushing changes nothing.
      for (const s of segs) push(s);
      expect(allXids()).toEqual([10, 11, 12]);
    }
  });

  it('joins a commit longer than a segment in every push order', () => {
    for (const order of [
      [0, 1, 2],
      [2, 1, 0],
      [1, 2, 0],
      [2, 0, 1],
      [1, 0, 2],
    ]) {
      cat.db.exec('DELETE FROM wal_files');
      const w = new WalWriter(MB, 5 * MB);
      w.commit(10, T0);
      const big = w.commit(20, T0 + 5, Buffer.alloc(Math.round(2.2 * MB)));
      w.commit(30, T0 + 9);
      w.switchWal();
      const segs = w.segments();
      expect(segs).toHaveLength(3);
      for (const i of order) push(segs[i]!);
      expect(allXids(), `order ${order}`).toEqual([10, 20, 30]);
      expect(storedEvents(cat, segs[0]!.name).xacts.map((x) => [x.xid, x.lsn])).toEqual([
        [10, w.written[0]!.lsn],
        [20, big.lsn],
      ]);
      // The file the big record ends in has it as its last record when nothing else ends there.
      const input = loadPlannerInput(cat);
      expect(allSegments(input).find((s) => s.segNo === 6)!.lastRecordLsn).toBe(null);
    }
  });

  it('leaves a half-archived spanning record out until the other half arrives', () => {
    const w = new WalWriter(MB, 5 * MB);
    w.fillTo(6 * MB - 16);
    w.commit(11, T0, Buffer.alloc(200));
    w.switchWal();
    const segs = w.segments();
    push(segs[0]!);
    expect(allXids()).toEqual([]);
    expect(storedEvents(cat, segs[0]!.name).tailState).toBe('pending');
    push(segs[1]!);
    expect(allXids()).toEqual([11]);
  });

  it("completes a timeline-1 record with timeline 2's copy of the next segment", () => {
    const w = new WalWriter(MB, 5 * MB);
    w.fillTo(6 * MB - 16);
    w.commit(11, T0, Buffer.alloc(200));
    w.switchWal();
    const [s5, s6] = w.segments();
    push(s5!);
    push(s6!, segmentName(2, 6, MB));
    expect(xids(s5!.name)).toEqual([11]);
  });

  it('finishes a COMMIT PREPARED that needs a rescan when the second segment is at hand', () => {
    const w = new WalWriter(MB, 5 * MB);
    w.fillTo(6 * MB - 4000);
    w.record(1, 0x30 | 0x80, 0, commitPreparedMain(T0 + 9, 9999, 50_000));
    w.switchWal();
    const [a, b] = w.segments();
    // In order: the second push has the bytes and rescans with carry.
    push(a!);
    push(b!);
    expect(allXids()).toEqual([9999]);
    // Reverse order: the first join needs a rescan; re-pushing the second segment finishes it.
    cat.db.exec('DELETE FROM wal_files');
    push(b!);
    push(a!);
    expect(storedEvents(cat, a!.name).tailState).toBe('needs-rescan');
    expect(allXids()).toEqual([]);
    push(b!);
    expect(allXids()).toEqual([9999]);
    expect(storedEvents(cat, a!.name).tailState).toBe('complete');
  });

  it('stores restore points and forgets a file whose row is deleted', () => {
    const w = new WalWriter(MB, 5 * MB);
    w.commit(10, T0);
    const rp = w.restorePoint('before-migration', T0 + 3);
    w.switchWal();
    const [s] = w.segments();
    push(s!);
    const input = loadPlannerInput(cat);
    expect(input.restorePoints).toEqual([{ timeline: 1, segNo: 5, lsn: rp.lsn, endLsn: rp.endLsn, name: 'before-migration', time: pgTimeToMicros(T0 + 3) }]);
    expect(allSegments(input)[0]!.lastRecordLsn).toBe(w.written[w.written.length - 1]!.lsn); // the switch
    cat.db.prepare('DELETE FROM wal_files WHERE name = ?').run(s!.name);
    for (const t of ['wal_scans', 'wal_xacts', 'wal_restore_points']) {
      expect((cat.db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n, t).toBe(0);
    }
  });

  it('refuses a segment with a damaged record', () => {
    const w = new WalWriter(MB, 5 * MB);
    const c = w.commit(10, T0);
    w.commit(11, T0 + 1);
    w.switchWal();
    const [s] = w.segments();
    s!.buf[c.lsn - 5 * MB + 30] ^= 0xff;
    const err = refusal(s!.buf, s!.name);
    expect(err.code).toBe('INVALID_WAL');
    expect(err.message).toMatch(/is damaged: .* refusing to archive it/);
  });
});

describe('a segment cut short', () => {
  it('refuses a segment whose valid WAL ends before its end without an XLOG_SWITCH, naming where', () => {
    const w = new WalWriter(MB, 5 * MB);
    w.commit(10, T0);
    const last = w.commit(11, T0 + 1);
    const [s] = w.segments(); // no switch: zeros after the last record, as in a zeroed copy
    const err = refusal(s!.buf, s!.name);
    expect(err.code).toBe('INVALID_WAL');
    expect(err.message).toContain(`is incomplete: valid WAL ends at offset ${last.endLsn - 5 * MB} of ${MB}`);
    // The same bytes as a .partial are what PostgreSQL archives at promotion: accepted.
    const partial = parseWalFileName(`${s!.name}.partial`)!;
    expect(scanArchivedFile(s!.buf, partial, validateSegment(s!.buf, partial)).endLsn).toBe(last.endLsn);
  });
});

describe('backups that end within the same second', () => {
  /** PostgreSQL's µs since 2000 ↔ µs since 1970. */
  const S = T0 + 10_000_000; // a whole second
  const iso = (pgMicros: number) => new Date(pgTimeToMicros(pgMicros) / 1000).toISOString();
  const backupRow = (name: string, source: 'walship' | 'history-file', startLsn: number, stopLsn: number, stop: number, stopText: string | null) => ({
    name,
    source,
    label: name,
    start_lsn: startLsn,
    stop_lsn: stopLsn,
    checkpoint_lsn: startLsn,
    start_timeline: 1,
    stop_timeline: 1,
    start_time: iso(stop - 2_000_000),
    stop_time: iso(stop),
    start_time_text: null,
    stop_time_text: stopText,
    status: 'complete',
  });
  /** Inclusive time targets some window of timeline 1 lists as reachable. */
  const listed = (input: PlannerInput, t: number) =>
    computeRanges(input, 0).timelines.flatMap((tl) => tl.windows).some((w) => w.timeTargets !== null && isoToMicros(w.timeTargets.from)! <= t && t < isoToMicros(w.timeTargets.before)!);

  for (const order of ['walship first', 'history file first'] as const) {
    it(`plan, ranges and restore agree on every target around them (${order} by LSN)`, () => {
      // A commit before both backups end, the two backup ends (the history file's STOP TIME is
      // the whole second S; walship's own end is S + 0.2 s exactly), commits after both.
      const w = new WalWriter(MB, 5 * MB);
      const start = w.commit(10, S - 5_000_000).lsn;
      const otherStart = w.noop(64).lsn; // two backups: two starts (a history file's twin of walship's own is listed once)
      const firstEnd = w.noop(64).endLsn;
      const secondEnd = w.noop(64).endLsn;
      w.commit(11, S + 900_000);
      w.commit(12, S + 3_000_000);
      w.switchWal();
      push(w.segments()[0]!);
      const [own, hist] = order === 'walship first' ? [firstEnd, secondEnd] : [secondEnd, firstEnd];
      cat.write('backups', () => {
        cat.upsertBackup(backupRow('own', 'walship', start, own, S + 200_000, null));
        cat.upsertBackup(backupRow('000000010000000000000005.00000028.backup', 'history-file', otherStart, hist, S, '2026-11-24 11:08:35 UTC'));
      });
      const all = loadPlannerInput(cat);
      const restorable = restorableInput(cat);
      for (let t = pgTimeToMicros(S - 500_000); t <= pgTimeToMicros(S + 3_500_000); t += 50_000) {
        const planned = planRecovery(all, { type: 'time', time: t }, { restoreCommand: 'x' });
        const restored = planRecovery(restorable, { type: 'time', time: t }, { restoreCommand: 'x' });
        const at = formatIso(t);
        expect(planned.reachable, `plan vs ranges at ${at}`).toBe(listed(all, t));
        expect(restored.reachable, `restore vs ranges at ${at}`).toBe(listed(restorable, t));
        // Both backups are usable: every target one reaches, the other does too.
        expect(planned.reachable, `plan vs restore at ${at}`).toBe(restored.reachable);
        // Nothing before walship's exact end; the history file's backup not before the next whole second.
        if (planned.reachable) {
          expect(t, at).toBeGreaterThanOrEqual(pgTimeToMicros(S + 200_000));
          if (planned.backup.name !== 'own') expect(t, at).toBeGreaterThanOrEqual(pgTimeToMicros(S + 1_000_000));
        }
      }
      expect(planRecovery(all, { type: 'time', time: pgTimeToMicros(S + 100_000) }, { restoreCommand: 'x' }).reachable).toBe(false);
      expect(planRecovery(all, { type: 'time', time: pgTimeToMicros(S + 300_000) }, { restoreCommand: 'x' }).reachable).toBe(true);
    });
  }
});
