/**
 * What a segment's scan says, as a compact JSON value that travels with the archived file (pure).
 *
 * archive-push scans every segment and .partial before storing it (wal/scanner.ts). The catalog
 * keeps what it needs of that scan (catalog/scan-store.ts), and so does the repository: the record
 * below is stored in the object's metadata (archive/envelope.ts) and in the repository's index
 * blocks (archive/index-blocks.ts), so that any host can rebuild the catalog's exact rows without
 * downloading and rescanning the segments.
 *
 * LSNs are offsets from the segment's start; the transaction ends, which a busy segment holds by
 * the ten thousand, are stored column by column and delta-encoded. Everything else is kept as the
 * scanner returned it.
 */
import { summarize, type EndReason, type HeadCont, type ScanResult, type TailCont, type WalEvents, type XactKind } from './scanner.js';

/** The part of a scan the catalog stores (catalog/scan-store.ts storeScan). */
export type ScanFacts = Pick<
  ScanResult,
  'startLsn' | 'endLsn' | 'endReason' | 'firstRecordLsn' | 'firstRecordPrev' | 'lastRecordLsn' | 'records' | 'summary' | 'headCont' | 'tailCont'
> &
  WalEvents;

export const SCAN_RECORD_VERSION = 1;

export interface ScanRecord {
  v: 1;
  /** endLsn, firstRecordLsn, lastRecordLsn as offsets from the segment's start. */
  end: number;
  reason: EndReason;
  first: number | null;
  last: number | null;
  /** xl_prev of the first record (an absolute LSN: it points before the segment); null when none starts here. */
  fp: number | null;
  records: number;
  head?: HeadCont;
  tail?: TailCont;
  /** Transaction ends: lsn offset deltas, lengths, xid deltas, kinds (KINDS index), time deltas (the first absolute). */
  x?: [number[], number[], number[], number[], number[]];
  /** Restore points: [lsn offset, length, name, time]. */
  rp?: [number, number, string, number][];
  /** Checkpoints: [lsn offset, length, redo LSN, time, online (1/0), tli, prev tli]. */
  cp?: [number, number, number, number, number, number, number][];
  /** End-of-recovery records: [lsn offset, length, time, new tli, prev tli]. */
  eor?: [number, number, number, number, number][];
  /** Backup ends: [lsn offset, length, backup start LSN]. */
  be?: [number, number, number][];
  /** Switches: [lsn offset, length]. */
  sw?: [number, number][];
  /** Overwritten continuations: [lsn offset, length, overwritten LSN, time]. */
  ow?: [number, number, number, number][];
}

const KINDS: readonly XactKind[] = ['commit', 'abort', 'commit_prepared', 'abort_prepared'];

export function encodeScanRecord(scan: ScanFacts): ScanRecord {
  const base = scan.startLsn;
  const off = (lsn: number) => lsn - base;
  const out: ScanRecord = {
    v: 1,
    end: off(scan.endLsn),
    reason: scan.endReason,
    first: scan.firstRecordLsn === null ? null : off(scan.firstRecordLsn),
    last: scan.lastRecordLsn === null ? null : off(scan.lastRecordLsn),
    fp: scan.firstRecordPrev,
    records: scan.records,
  };
  if (scan.headCont) out.head = scan.headCont;
  if (scan.tailCont) out.tail = scan.tailCont;
  if (scan.xacts.length > 0) {
    const cols: [number[], number[], number[], number[], number[]] = [[], [], [], [], []];
    let lsn = base;
    let xid = 0;
    let time = 0;
    for (const x of scan.xacts) {
      cols[0].push(x.lsn - lsn);
      cols[1].push(x.endLsn - x.lsn);
      cols[2].push(x.xid - xid);
      cols[3].push(KINDS.indexOf(x.kind));
      cols[4].push(x.time - time);
      lsn = x.lsn;
      xid = x.xid;
      time = x.time;
    }
    out.x = cols;
  }
  if (scan.restorePoints.length) out.rp = scan.restorePoints.map((r) => [off(r.lsn), r.endLsn - r.lsn, r.name, r.time]);
  if (scan.checkpoints.length) out.cp = scan.checkpoints.map((c) => [off(c.lsn), c.endLsn - c.lsn, c.redo, c.time, c.online ? 1 : 0, c.tli, c.prevTli]);
  if (scan.endOfRecovery.length) out.eor = scan.endOfRecovery.map((e) => [off(e.lsn), e.endLsn - e.lsn, e.time, e.newTli, e.prevTli]);
  if (scan.backupEnds.length) out.be = scan.backupEnds.map((b) => [off(b.lsn), b.endLsn - b.lsn, b.backupStartLsn]);
  if (scan.switches.length) out.sw = scan.switches.map((s) => [off(s.lsn), s.endLsn - s.lsn]);
  if (scan.overwrites.length) out.ow = scan.overwrites.map((o) => [off(o.lsn), o.endLsn - o.lsn, o.overwrittenLsn, o.time]);
  return out;
}

/** The scan of the segment starting at `startLsn` back from its record; throws on a malformed one. */
export function decodeScanRecord(rec: ScanRecord, startLsn: number): ScanFacts {
  if (rec?.v !== SCAN_RECORD_VERSION) throw new Error(`scan record of version ${String(rec?.v)}, expected ${SCAN_RECORD_VERSION}`);
  const at = (o: number) => startLsn + o;
  const xacts: ScanFacts['xacts'] = [];
  if (rec.x) {
    const [dl, len, dx, kind, dt] = rec.x;
    let lsn = startLsn;
    let xid = 0;
    let time = 0;
    for (let i = 0; i < dl.length; i++) {
      lsn += dl[i]!;
      xid += dx[i]!;
      time += dt[i]!;
      const k = KINDS[kind[i]!];
      if (k === undefined) throw new Error(`scan record: transaction kind ${kind[i]}`);
      xacts.push({ lsn, endLsn: lsn + len[i]!, xid, kind: k, time });
    }
  }
  return {
    startLsn,
    endLsn: at(rec.end),
    endReason: rec.reason,
    firstRecordLsn: rec.first === null ? null : at(rec.first),
    lastRecordLsn: rec.last === null ? null : at(rec.last),
    firstRecordPrev: rec.fp ?? null,
    records: rec.records,
    summary: summarize(xacts),
    headCont: rec.head ?? null,
    tailCont: rec.tail ?? null,
    xacts,
    restorePoints: (rec.rp ?? []).map(([o, l, name, time]) => ({ lsn: at(o), endLsn: at(o) + l, name, time })),
    checkpoints: (rec.cp ?? []).map(([o, l, redo, time, online, tli, prevTli]) => ({ lsn: at(o), endLsn: at(o) + l, redo, time, online: online === 1, tli, prevTli })),
    endOfRecovery: (rec.eor ?? []).map(([o, l, time, newTli, prevTli]) => ({ lsn: at(o), endLsn: at(o) + l, time, newTli, prevTli })),
    backupEnds: (rec.be ?? []).map(([o, l, backupStartLsn]) => ({ lsn: at(o), endLsn: at(o) + l, backupStartLsn })),
    switches: (rec.sw ?? []).map(([o, l]) => ({ lsn: at(o), endLsn: at(o) + l })),
    overwrites: (rec.ow ?? []).map(([o, l, overwrittenLsn, time]) => ({ lsn: at(o), endLsn: at(o) + l, overwrittenLsn, time })),
  };
}
