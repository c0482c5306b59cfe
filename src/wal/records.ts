/**
 * Decoding the few WAL records walship cares about (pure). See docs/wal-format.md,
 * "Records" and "What walship reads out of records"; layouts checked against PostgreSQL 13–18
 * xlogrecord.h, xlogreader.c (DecodeXLogRecord), xact.h / xactdesc.c and pg_control.h.
 *
 * Every function here works on a record's bytes laid out contiguously from the record start:
 * `b[base + i]` is byte i of the record, for i < avail. When the bytes needed are not all there,
 * the result is NEED (the caller keeps more bytes, or reports that it cannot decode).
 *
 * Times are PostgreSQL TimestampTz values: microseconds since 2000-01-01 00:00:00 UTC, carried
 * as JavaScript numbers (exact up to ±2^53 µs, i.e. until the year 2285). See pgTimeToIso().
 */

export const RM_XLOG_ID = 0;
export const RM_XACT_ID = 1;
/** Highest built-in resource manager id in 13–18; 128–255 are custom (15+). */
export const RM_MAX_BUILTIN_ID = 21;

export const XLR_MAX_BLOCK_ID = 32;
export const XLR_BLOCK_ID_DATA_SHORT = 255;
export const XLR_BLOCK_ID_DATA_LONG = 254;
export const XLR_BLOCK_ID_ORIGIN = 253;
export const XLR_BLOCK_ID_TOPLEVEL_XID = 252;

const BKPBLOCK_HAS_IMAGE = 0x10;
const BKPBLOCK_HAS_DATA = 0x20;
const BKPBLOCK_SAME_REL = 0x80;
const BKPIMAGE_HAS_HOLE = 0x01;

// XACT opcodes (xl_info & 0x70) and flags.
export const XLOG_XACT_OPMASK = 0x70;
export const XLOG_XACT_COMMIT = 0x00;
export const XLOG_XACT_PREPARE = 0x10;
export const XLOG_XACT_ABORT = 0x20;
export const XLOG_XACT_COMMIT_PREPARED = 0x30;
export const XLOG_XACT_ABORT_PREPARED = 0x40;
export const XLOG_XACT_HAS_INFO = 0x80;
const XACT_XINFO_HAS_DBINFO = 1 << 0;
const XACT_XINFO_HAS_SUBXACTS = 1 << 1;
const XACT_XINFO_HAS_RELFILELOCATORS = 1 << 2;
const XACT_XINFO_HAS_INVALS = 1 << 3;
const XACT_XINFO_HAS_TWOPHASE = 1 << 4;
const XACT_XINFO_HAS_DROPPED_STATS = 1 << 8;

// XLOG opcodes (xl_info & 0xF0).
export const XLOG_CHECKPOINT_SHUTDOWN = 0x00;
export const XLOG_CHECKPOINT_ONLINE = 0x10;
export const XLOG_SWITCH = 0x40;
export const XLOG_BACKUP_END = 0x50;
export const XLOG_RESTORE_POINT = 0x70;
export const XLOG_END_OF_RECOVERY = 0x90;
export const XLOG_OVERWRITE_CONTRECORD = 0xd0;

/** Microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch). */
export const PG_EPOCH_UNIX_US = 946_684_800_000_000;

export type XactKind = 'commit' | 'abort' | 'commit_prepared' | 'abort_prepared';

/** A transaction end (the only records recovery_target_time looks at). */
export interface XactEvent {
  lsn: number;
  /** PostgreSQL's EndRecPtr for the record: where the next record may start (MAXALIGNed). */
  endLsn: number;
  /** The transaction: xl_xid for COMMIT/ABORT, the prepared transaction's xid for *_PREPARED. */
  xid: number;
  kind: XactKind;
  /** xact_time, µs since 2000-01-01 UTC. */
  time: number;
}

export interface RestorePointEvent {
  lsn: number;
  endLsn: number;
  name: string;
  /** µs since 2000-01-01 UTC. */
  time: number;
}

export interface CheckpointEvent {
  lsn: number;
  endLsn: number;
  /** The checkpoint's REDO location. */
  redo: number;
  /** CheckPoint.time (whole seconds) converted to µs since 2000-01-01 UTC. */
  time: number;
  online: boolean;
  tli: number;
  prevTli: number;
}

export interface EndOfRecoveryEvent {
  lsn: number;
  endLsn: number;
  /** µs since 2000-01-01 UTC. */
  time: number;
  newTli: number;
  prevTli: number;
}

export interface BackupEndEvent {
  lsn: number;
  endLsn: number;
  backupStartLsn: number;
}

export interface SwitchEvent {
  lsn: number;
  /** The start of the next segment (PostgreSQL's EndRecPtr for a switch record). */
  endLsn: number;
}

export interface OverwriteContrecordEvent {
  lsn: number;
  endLsn: number;
  /** The LSN of the aborted (partially written) record this one replaces. */
  overwrittenLsn: number;
  /** µs since 2000-01-01 UTC. */
  time: number;
}

export interface WalEvents {
  xacts: XactEvent[];
  restorePoints: RestorePointEvent[];
  checkpoints: CheckpointEvent[];
  endOfRecovery: EndOfRecoveryEvent[];
  backupEnds: BackupEndEvent[];
  switches: SwitchEvent[];
  overwrites: OverwriteContrecordEvent[];
}

export function emptyEvents(): WalEvents {
  return { xacts: [], restorePoints: [], checkpoints: [], endOfRecovery: [], backupEnds: [], switches: [], overwrites: [] };
}

/** µs since 2000-01-01 UTC → ISO 8601 with microseconds, e.g. 2026-11-24T11:08:25.934673Z. */
export function pgTimeToIso(t: number): string {
  const unixUs = t + PG_EPOCH_UNIX_US;
  const ms = Math.floor(unixUs / 1000);
  const us = unixUs - ms * 1000;
  const iso = new Date(ms).toISOString(); // ...sss Z
  return `${iso.slice(0, -1)}${String(us).padStart(3, '0')}Z`;
}

/** µs since 2000-01-01 UTC → Unix milliseconds (floored). */
export function pgTimeToUnixMs(t: number): number {
  return Math.floor((t + PG_EPOCH_UNIX_US) / 1000);
}

/** Unix milliseconds → µs since 2000-01-01 UTC. */
export function unixMsToPgTime(ms: number): number {
  return ms * 1000 - PG_EPOCH_UNIX_US;
}

/** Records whose contents walship decodes. */
export function isInteresting(rmid: number, info: number): boolean {
  if (rmid === RM_XACT_ID) {
    const op = info & XLOG_XACT_OPMASK;
    return op === XLOG_XACT_COMMIT || op === XLOG_XACT_ABORT || op === XLOG_XACT_COMMIT_PREPARED || op === XLOG_XACT_ABORT_PREPARED;
  }
  if (rmid === RM_XLOG_ID) {
    const op = info & 0xf0;
    return (
      op === XLOG_CHECKPOINT_SHUTDOWN ||
      op === XLOG_CHECKPOINT_ONLINE ||
      op === XLOG_SWITCH ||
      op === XLOG_BACKUP_END ||
      op === XLOG_RESTORE_POINT ||
      op === XLOG_END_OF_RECOVERY ||
      op === XLOG_OVERWRITE_CONTRECORD
    );
  }
  return false;
}

export function isSwitch(rmid: number, info: number): boolean {
  return rmid === RM_XLOG_ID && (info & 0xf0) === XLOG_SWITCH;
}

export function validRmid(rmid: number, pgMajor: number): boolean {
  return rmid <= RM_MAX_BUILTIN_ID || (pgMajor >= 15 && rmid >= 128);
}

// ---- little-endian readers over Uint8Array (no bounds checks: callers check) ----

export function u16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}
export function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}
export function i32(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
}
/** Unsigned 64-bit value as a number (exact below 2^53). */
export function u64(b: Uint8Array, o: number): number {
  return u32(b, o + 4) * 0x100000000 + u32(b, o);
}
/** Signed 64-bit value as a number (exact within ±2^53). */
export function i64(b: Uint8Array, o: number): number {
  return i32(b, o + 4) * 0x100000000 + u32(b, o);
}

// ---- record layout ----

export const DECODE_OK = 0;
/** More of the record's leading bytes are needed. */
export const DECODE_NEED = 1;
/** The record's headers are inconsistent. The message is in decodeError. */
export const DECODE_ERROR = 2;

/**
 * Results of locateMainData() / decodeRecord(), reused to avoid allocating per record: `need` is
 * how many leading bytes are needed (after DECODE_NEED), `used` how many were read (after DECODE_OK).
 */
export const located = { mainOff: 0, mainLen: 0, error: '', need: 0, used: 0 };

/**
 * Walks the block headers of a record (as DecodeXLogRecord does) to find its main data, which
 * is always the record's last `mainLen` bytes. Checks that the header lengths add up.
 */
export function locateMainData(b: Uint8Array, base: number, avail: number, totLen: number, pgMajor: number): number {
  let off = 24;
  let datatotal = 0;
  let mainLen = 0;
  let maxId = -1;
  while (totLen - off > datatotal) {
    if (off + 1 > avail) return need(off + 1);
    const id = b[base + off]!;
    if (id === XLR_BLOCK_ID_DATA_SHORT) {
      if (off + 2 > totLen) return fail('record too short for its main data header');
      if (off + 2 > avail) return need(off + 2);
      mainLen = b[base + off + 1]!;
      off += 2;
      datatotal += mainLen;
      break;
    }
    if (id === XLR_BLOCK_ID_DATA_LONG) {
      if (off + 5 > totLen) return fail('record too short for its main data header');
      if (off + 5 > avail) return need(off + 5);
      mainLen = u32(b, base + off + 1);
      off += 5;
      datatotal += mainLen;
      break;
    }
    if (id === XLR_BLOCK_ID_ORIGIN) {
      off += 3;
      continue;
    }
    if (id === XLR_BLOCK_ID_TOPLEVEL_XID && pgMajor >= 14) {
      off += 5;
      continue;
    }
    if (id > XLR_MAX_BLOCK_ID) return fail(`invalid block_id ${id}`);
    if (id <= maxId) return fail(`out-of-order block_id ${id}`);
    maxId = id;
    if (off + 4 > avail) return need(off + 4);
    const forkFlags = b[base + off + 1]!;
    const dataLen = u16(b, base + off + 2);
    off += 4;
    if ((forkFlags & BKPBLOCK_HAS_DATA) !== 0 ? dataLen === 0 : dataLen !== 0) {
      return fail(`block ${id}: BKPBLOCK_HAS_DATA does not match data length ${dataLen}`);
    }
    datatotal += dataLen;
    if ((forkFlags & BKPBLOCK_HAS_IMAGE) !== 0) {
      if (off + 5 > avail) return need(off + 5);
      const bimgLen = u16(b, base + off);
      const bimgInfo = b[base + off + 4]!;
      off += 5;
      // 13–14: BKPIMAGE_IS_COMPRESSED 0x02; 15+: PGLZ 0x04 | LZ4 0x08 | ZSTD 0x10.
      const compressed = pgMajor >= 15 ? (bimgInfo & 0x1c) !== 0 : (bimgInfo & 0x02) !== 0;
      if ((bimgInfo & BKPIMAGE_HAS_HOLE) !== 0 && compressed) off += 2; // hole_length
      if (bimgLen === 0) return fail(`block ${id}: image with zero length`);
      datatotal += bimgLen;
    }
    if ((forkFlags & BKPBLOCK_SAME_REL) === 0) off += 12;
    off += 4; // BlockNumber
    if (off > totLen) return fail('block headers run past the record end');
  }
  if (totLen - off !== datatotal) {
    return fail(`record length ${totLen} does not match its headers (${off} bytes of headers, ${datatotal} of data)`);
  }
  located.mainOff = totLen - mainLen;
  located.mainLen = mainLen;
  located.used = off;
  return DECODE_OK;
}

function need(n: number): number {
  located.need = n;
  return DECODE_NEED;
}
function fail(msg: string): number {
  located.error = msg;
  return DECODE_ERROR;
}

const utf8 = new TextDecoder('utf-8');

/** Main data must have at least n bytes, and the first n must be available. */
function needMain(ml: number, mo: number, avail: number, n: number): number {
  if (ml < n) return fail(`main data is ${ml} bytes, expected at least ${n}`);
  if (mo + n > avail) return need(mo + n);
  if (mo + n > located.used) located.used = mo + n;
  return DECODE_OK;
}

/** Sizes of xl_xact_stats_item: {kind, dboid, objoid} in 15–17, {kind, dboid, objid_lo, objid_hi} in 18+. */
function statsItemSize(pgMajor: number): number {
  return pgMajor >= 18 ? 16 : 12;
}

/**
 * Decodes an interesting record (isInteresting) whose bytes [0, avail) are at b[base...], and
 * appends what it finds to `out`. The record's CRC must already have been checked.
 */
export function decodeRecord(
  b: Uint8Array,
  base: number,
  avail: number,
  totLen: number,
  rmid: number,
  info: number,
  xid: number,
  lsn: number,
  endLsn: number,
  pgMajor: number,
  out: WalEvents,
): number {
  if (rmid === RM_XLOG_ID && (info & 0xf0) === XLOG_SWITCH) {
    located.used = 24;
    out.switches.push({ lsn, endLsn });
    return DECODE_OK;
  }
  const st = locateMainData(b, base, avail, totLen, pgMajor);
  if (st !== DECODE_OK) return st;
  const mo = located.mainOff;
  const ml = located.mainLen;
  const m = base + mo;
  let r: number;
  if (rmid === RM_XACT_ID) {
    const op = info & XLOG_XACT_OPMASK;
    const kind: XactKind =
      op === XLOG_XACT_COMMIT ? 'commit' : op === XLOG_XACT_ABORT ? 'abort' : op === XLOG_XACT_COMMIT_PREPARED ? 'commit_prepared' : 'abort_prepared';
    const hasInfo = (info & XLOG_XACT_HAS_INFO) !== 0;
    if ((r = needMain(ml, mo, avail, hasInfo ? 12 : 8)) !== DECODE_OK) return r;
    const time = i64(b, m);
    let theXid = xid;
    const xinfo = hasInfo ? u32(b, m + 8) : 0;
    if ((xinfo & XACT_XINFO_HAS_TWOPHASE) !== 0) {
      // The prepared transaction's xid comes after the optional arrays; walk them.
      let o = 12;
      if ((xinfo & XACT_XINFO_HAS_DBINFO) !== 0) o += 8;
      for (let part = 0; part < 4; part++) {
        const flag =
          part === 0 ? XACT_XINFO_HAS_SUBXACTS : part === 1 ? XACT_XINFO_HAS_RELFILELOCATORS : part === 2 ? XACT_XINFO_HAS_DROPPED_STATS : XACT_XINFO_HAS_INVALS;
        if ((xinfo & flag) === 0 || (part === 2 && pgMajor < 15)) continue;
        const item = part === 0 ? 4 : part === 1 ? 12 : part === 2 ? statsItemSize(pgMajor) : 16;
        if ((r = needMain(ml, mo, avail, o + 4)) !== DECODE_OK) return r;
        const n = i32(b, m + o);
        if (n < 0 || n * item > ml) return fail(`implausible array length ${n} in a transaction record`);
        o += 4 + n * item;
      }
      if ((r = needMain(ml, mo, avail, o + 4)) !== DECODE_OK) return r;
      theXid = u32(b, m + o);
    } else if (kind === 'commit_prepared' || kind === 'abort_prepared') {
      return fail(`${kind} record without the prepared transaction's xid`);
    }
    out.xacts.push({ lsn, endLsn, xid: theXid, kind, time });
    return DECODE_OK;
  }
  // RM_XLOG_ID
  const op = info & 0xf0;
  switch (op) {
    case XLOG_CHECKPOINT_SHUTDOWN:
    case XLOG_CHECKPOINT_ONLINE: {
      if ((r = needMain(ml, mo, avail, 72)) !== DECODE_OK) return r;
      out.checkpoints.push({
        lsn,
        endLsn,
        redo: u64(b, m),
        time: i64(b, m + 64) * 1_000_000 - PG_EPOCH_UNIX_US,
        online: op === XLOG_CHECKPOINT_ONLINE,
        tli: u32(b, m + 8),
        prevTli: u32(b, m + 12),
      });
      return DECODE_OK;
    }
    case XLOG_BACKUP_END: {
      if ((r = needMain(ml, mo, avail, 8)) !== DECODE_OK) return r;
      out.backupEnds.push({ lsn, endLsn, backupStartLsn: u64(b, m) });
      return DECODE_OK;
    }
    case XLOG_RESTORE_POINT: {
      if ((r = needMain(ml, mo, avail, 72)) !== DECODE_OK) return r;
      let e = m + 8;
      const lim = m + 72;
      while (e < lim && b[e] !== 0) e++;
      out.restorePoints.push({ lsn, endLsn, name: utf8.decode(b.subarray(m + 8, e)), time: i64(b, m) });
      return DECODE_OK;
    }
    case XLOG_END_OF_RECOVERY: {
      if ((r = needMain(ml, mo, avail, 16)) !== DECODE_OK) return r;
      out.endOfRecovery.push({ lsn, endLsn, time: i64(b, m), newTli: u32(b, m + 8), prevTli: u32(b, m + 12) });
      return DECODE_OK;
    }
    case XLOG_OVERWRITE_CONTRECORD: {
      if ((r = needMain(ml, mo, avail, 16)) !== DECODE_OK) return r;
      out.overwrites.push({ lsn, endLsn, overwrittenLsn: u64(b, m), time: i64(b, m + 8) });
      return DECODE_OK;
    }
    default:
      return DECODE_OK;
  }
}

export function decodeError(): string {
  return located.error;
}
export function decodeNeed(): number {
  return located.need;
}
export function decodeUsed(): number {
  return located.used;
}
