/**
 * The checks `walship verify` makes of one archived object or one backup. Each returns what it
 * found wrong (null: sound); only a repository that cannot be read throws.
 */
import { asWalshipError } from '../errors.js';
import type { StorageDriver } from '../storage/driver.js';
import type { WalFileRow } from '../catalog/catalog.js';
import { scanArchivedFile } from '../wal/scan-file.js';
import { EnvelopeError, decodeMeta, decodeObject, sha256, unpackScan, type ObjectMeta } from '../archive/envelope.js';
import { WHOLE_MAX } from '../archive/read-pieces.js';
import { readSegmentObject, type SegmentObject } from '../archive/repo-reader.js';
import type { SegmentInfo } from '../wal/page.js';
import type { ScanResult } from '../wal/scanner.js';
import { validateFile } from '../archive/validate.js';
import type { RepoIdentity } from '../archive/identity.js';
import { endsOf } from '../archive/continuity.js';
import { backupKey } from '../backup/format.js';
import { checkPiece, fetchChunk, pieceKey, piecesByChunk, piecesOf, readBackup, readChunk, type PieceRef } from '../backup/read.js';
import { runPool } from '../pool.js';
import { parseWalFileName, type WalFileName } from '../wal/names.js';
import { unfinishedSegment } from '../wal/complete.js';
import { encodeScanRecord } from '../wal/scan-record.js';
import type { SegmentEnds } from '../wal/continuity.js';

export type ProblemKind = 'damaged' | 'missing' | 'diverged' | 'gap' | 'unrestorable' | 'leftover' | 'orphan';

export interface Problem {
  kind: ProblemKind;
  /** The object (repository key) or the backup it is about. */
  what: string;
  detail: string;
}

/** Whether a problem fails the run (leftovers and orphans are reported, and cost only space). */
export const isFailure = (p: Problem): boolean => p.kind !== 'leftover' && p.kind !== 'orphan';

/** What a check needs of a wal_files row (not the packed scan, which is large). */
export type VerifyRow = Pick<WalFileRow, 'name' | 'kind' | 'timeline' | 'seg_no' | 'raw_size' | 'stored_size' | 'sha256' | 'body_sha256' | 'object_key'>;
export const VERIFY_COLUMNS = 'name, kind, timeline, seg_no, raw_size, stored_size, sha256, body_sha256, object_key';

/**
 * What a checking thread is asked (check-worker.ts), or verify's own thread. `stored`: an object
 * an earlier verify checked in depth, whose stored bytes need only be proven unchanged (a WAL
 * object: with the scan its catalog row carries; a chunk: its stored SHA-256).
 */
export type CheckJob =
  | { kind: 'wal'; row: VerifyRow; stored?: { scanRecord: string | null } }
  | { kind: 'chunk'; backup: string; chunk: string; pieces: [string, PieceRef][]; storedSha256?: string };

export function runCheckJob(storage: StorageDriver, identity: RepoIdentity, j: CheckJob): Promise<WalCheck | ChunkCheck> {
  if (j.kind === 'wal') return j.stored ? checkStoredWal(storage, j.row, j.stored.scanRecord) : checkWalObject(storage, j.row, identity);
  return checkChunk(storage, j.backup, j.chunk, new Map(j.pieces), j.storedSha256);
}

export interface WalCheck {
  problem: Problem | null;
  /** Bytes read, and what they decompressed to (0 when they did not). */
  bytes: number;
  rawBytes: number;
  /** For a sound segment: where its WAL begins and ends, to check its neighbours against. */
  ends?: SegmentEnds;
}

/** What a check reports for an object found damaged: `detail`, after reading `bytes` of it. */
const damagedObject = (key: string, detail: string, bytes: number): WalCheck => ({ problem: { kind: 'damaged', what: key, detail }, bytes, rawBytes: 0 });

/** What is wrong with an object's name and sizes against the catalog's row, or null. */
function notTheRow(row: VerifyRow, meta: ObjectMeta, stored: number, raw: number): string | null {
  if (meta.name !== row.name) return `it holds ${meta.name}`;
  if (stored !== row.stored_size || raw !== row.raw_size) return `its size (${stored} stored, ${raw} raw) is not the catalog's (${row.stored_size}, ${row.raw_size})`;
  return null;
}

/** What a check reports for a file the catalog lists whose object is not in the repository. */
function missingObject(row: VerifyRow): WalCheck {
  return { problem: { kind: 'missing', what: row.object_key, detail: `the catalog lists ${row.name}, but the repository has no object for it` }, bytes: 0, rawBytes: 0 };
}

/**
 * One archived WAL file, as fetch and push judge it: the object is there; its compressed data
 * and zstd's checksum of what it decompresses to; its metadata against the catalog's row and the
 * repository's identity; the file by the rules push applies (pages, every record's CRC, a
 * segment finished); and the scan its metadata carries, which the planner trusts, against what
 * its records really say.
 */
export async function checkWalObject(storage: StorageDriver, row: VerifyRow, identity: RepoIdentity): Promise<WalCheck> {
  const key = row.object_key;
  const bad = (detail: string, bytes: number) => damagedObject(key, detail, bytes);
  const file = parseWalFileName(row.name)!;
  // A large segment is read in pieces, in memory that does not grow with it.
  if (row.raw_size > WHOLE_MAX && (file.kind === 'segment' || file.kind === 'partial')) return checkLargeSegment(storage, row, identity, file);
  const obj = await storage.get(key);
  if (obj === null) return missingObject(row);
  let meta;
  let raw: Buffer;
  try {
    ({ meta, raw } = await decodeObject(obj, { sha256: row.sha256, bodySha256: row.body_sha256 }));
  } catch (err) {
    if (err instanceof EnvelopeError) return bad(err.message, obj.length);
    throw err;
  }
  const wrong = notTheRow(row, meta, obj.length, raw.length);
  if (wrong !== null) return bad(wrong, obj.length);
  try {
    const v = validateFile(file, raw);
    if (!v.segment) return { problem: null, bytes: obj.length, rawBytes: raw.length };
    const seg = v.segment;
    return await judgeSegment(key, meta, seg, () => scanArchivedFile(raw, file, seg, { archived: true }), identity, file, obj.length, raw.length);
  } catch (err) {
    const we = asWalshipError(err);
    if (err instanceof EnvelopeError || we.code === 'INVALID_WAL' || we.code === 'OBJECT_CORRUPT') return bad(we.message, obj.length);
    throw err;
  }
}

/** checkWalObject for a segment larger than 16 MiB: the same checks, its object read in pieces (readSegmentObject). */
async function checkLargeSegment(storage: StorageDriver, row: VerifyRow, identity: RepoIdentity, file: WalFileName): Promise<WalCheck> {
  const key = row.object_key;
  const bad = (detail: string, bytes: number) => damagedObject(key, detail, bytes);
  let read: SegmentObject | null;
  try {
    read = await readSegmentObject(storage, key, file, { sha256: row.sha256, bodySha256: row.body_sha256 });
  } catch (err) {
    const we = asWalshipError(err);
    if (err instanceof EnvelopeError || we.code === 'INVALID_WAL' || we.code === 'OBJECT_CORRUPT') return bad(we.message, row.stored_size);
    throw err;
  }
  if (read === null) return missingObject(row);
  const { meta, storedSize, rawSize } = read;
  const wrong = notTheRow(row, meta, storedSize, rawSize);
  if (wrong !== null) return bad(wrong, storedSize);
  try {
    return await judgeSegment(key, meta, read.seg, () => read.scan, identity, file, storedSize, rawSize);
  } catch (err) {
    if (err instanceof EnvelopeError) return bad(err.message, storedSize);
    throw err;
  }
}

/** A segment's content against the repository's identity, then its scan (`scanOf`): its finish, and the scan its metadata carries. */
async function judgeSegment(key: string, meta: ObjectMeta, seg: SegmentInfo, scanOf: () => ScanResult, identity: RepoIdentity, file: WalFileName, bytes: number, rawBytes: number): Promise<WalCheck> {
  const bad = (detail: string) => damagedObject(key, detail, bytes);
  if (seg.systemIdentifier !== identity.systemIdentifier || seg.segSize !== identity.walSegmentSize) {
    return bad(`it is WAL of system ${seg.systemIdentifier} (segment size ${seg.segSize}), not of this repository's ${identity.systemIdentifier}`);
  }
  const scan = scanOf();
  const unfinished = unfinishedSegment(file, scan);
  if (unfinished !== null) return bad(`it is not a finished segment: ${unfinished}`);
  if (meta.scan !== undefined && meta.startLsn !== undefined) {
    const carried = await unpackScan(meta.scan, meta.startLsn);
    if (JSON.stringify(encodeScanRecord(carried)) !== JSON.stringify(encodeScanRecord(scan))) {
      return bad('the scan its metadata carries (what ranges and plan rely on) is not what its records say');
    }
  }
  return { problem: null, bytes, rawBytes, ends: endsOf(scan) };
}

/**
 * One archived WAL file an earlier verify checked in depth: its stored bytes are still those it
 * checked. Its metadata names the file with the catalog's checksums, sizes and scan, and its
 * compressed data has the SHA-256 recorded when it was stored. Nothing is decompressed: the
 * data is the very data checked before, and decompresses to what it did.
 */
export async function checkStoredWal(storage: StorageDriver, row: VerifyRow, scanRecord: string | null): Promise<WalCheck> {
  const key = row.object_key;
  const obj = await storage.get(key);
  if (obj === null) return missingObject(row);
  const bad = (detail: string) => damagedObject(key, detail, obj.length);
  try {
    const { meta, bodyOffset } = decodeMeta(obj);
    if (meta.name !== row.name) return bad(`it holds ${meta.name}`);
    if (meta.sha256 !== row.sha256 || meta.bodySha256 !== row.body_sha256) return bad(`its checksums (${meta.sha256}, ${meta.bodySha256 ?? 'none'}) are not the catalog's (${row.sha256}, ${row.body_sha256})`);
    if (obj.length !== row.stored_size || meta.rawSize !== row.raw_size || obj.length - bodyOffset !== meta.bodySize) {
      return bad(`its size (${obj.length} stored, ${meta.rawSize} raw) is not the catalog's (${row.stored_size}, ${row.raw_size})`);
    }
    if ((meta.scan ?? null) !== scanRecord) return bad('the scan its metadata carries is not the one the catalog read from it');
    const sum = sha256(obj.subarray(bodyOffset));
    if (sum !== row.body_sha256) return bad(`checksum mismatch: compressed data sha256 ${sum}, recorded ${row.body_sha256}`);
    return { problem: null, bytes: obj.length, rawBytes: 0 };
  } catch (err) {
    if (err instanceof EnvelopeError) return bad(err.message);
    throw err;
  }
}

/** The documents a walship backup's directory holds besides its chunks. */
const BACKUP_DOCS = new Set(['started.json', 'backup.json', 'manifest.json', 'failed.json']);

/** What reading part of a backup failed with, as a problem (missing or damaged); a repository that cannot be read is thrown on. */
function backupProblem(err: unknown, what: string): Problem {
  const we = asWalshipError(err);
  if (we.code === 'REPOSITORY_UNAVAILABLE' || we.code === 'REPOSITORY_INVALID') throw err;
  return { kind: we.code === 'OBJECT_LOST' ? 'missing' : 'damaged', what, detail: we.message };
}

export interface ChunkCheck {
  problem: Problem | null;
  /** The manifest pieces (pieceKey) found sound in it. */
  seen: string[];
  stored: number;
  raw: number;
}

/**
 * One chunk of backup `id`: there, sound, and each of its tar entries the piece `pieces` says.
 * With `storedSha256` (a chunk an earlier verify checked in depth): its stored bytes have that
 * SHA-256, so its pieces are the ones found then.
 */
export async function checkChunk(storage: StorageDriver, id: string, chunk: string, pieces: ReadonlyMap<string, PieceRef>, storedSha256?: string): Promise<ChunkCheck> {
  const seen: string[] = [];
  try {
    if (storedSha256 !== undefined) {
      const body = await fetchChunk(storage, id, chunk);
      const sum = sha256(body);
      if (sum !== storedSha256) return { problem: { kind: 'damaged', what: backupKey(id, chunk), detail: `backup ${id}: ${chunk} has SHA-256 ${sum}, not the ${storedSha256} recorded when it was stored` }, seen, stored: body.length, raw: 0 };
      return { problem: null, seen: [...pieces.keys()], stored: body.length, raw: 0 };
    }
    const size = await readChunk(storage, id, chunk, async (entry, data) => {
      const hit = pieces.get(pieceKey(chunk, entry));
      if (!hit) return;
      checkPiece(id, chunk, hit, data, 'restoring it would stop there');
      seen.push(pieceKey(chunk, entry));
    });
    return { problem: null, seen, ...size };
  } catch (err) {
    return { problem: backupProblem(err, backupKey(id, chunk)), seen, stored: 0, raw: 0 };
  }
}

/**
 * One complete walship backup: its documents, every chunk there and sound (each checked by
 * `chunkCheck`, which may run it on another thread), every piece the manifest names found in its
 * chunk with its checksum; objects in its directory it does not name. `checkedBefore`: an
 * earlier verify checked it in depth, so a chunk whose stored SHA-256 the backup records
 * (`chunkSha256`) needs only that checked.
 */
export async function checkBackup(
  storage: StorageDriver,
  id: string,
  names: readonly string[],
  chunkCheck: (chunk: string, pieces: Map<string, PieceRef>, storedSha256?: string) => Promise<ChunkCheck>,
  parallel: number,
  checkedBefore = false,
): Promise<{ problems: Problem[]; stored: number; raw: number }> {
  const problems: Problem[] = [];
  let doc;
  try {
    doc = await readBackup(storage, id);
  } catch (err) {
    return { problems: [backupProblem(err, `backup ${id}`)], stored: 0, raw: 0 };
  }
  const { summary, manifest } = doc;
  const pieces = piecesOf(manifest);
  const byChunk = piecesByChunk(pieces, summary.chunks);
  const seen = new Set<string>();
  let stored = 0;
  let raw = 0;
  await runPool(summary.chunks, parallel, async (chunk) => {
    const c = await chunkCheck(chunk, byChunk.get(chunk)!, checkedBefore ? summary.chunkSha256?.[chunk] : undefined);
    if (c.problem) problems.push(c.problem);
    for (const k of c.seen) seen.add(k);
    stored += c.stored;
    raw += c.raw;
  });
  for (const [k, { file, piece }] of pieces) {
    if (!seen.has(k) && !problems.some((p) => p.what === backupKey(id, piece.chunk))) {
      problems.push({ kind: 'missing', what: backupKey(id, piece.chunk), detail: `backup ${id}: ${file.path} (bytes ${piece.offset}-${piece.offset + piece.length}) is listed in the manifest but not in ${piece.chunk}` });
    }
  }
  const chunks = new Set(summary.chunks);
  for (const n of names) {
    if (!BACKUP_DOCS.has(n) && !chunks.has(n)) problems.push({ kind: 'orphan', what: backupKey(id, n), detail: `backup ${id} does not name it (left by an interrupted write?)` });
  }
  return { problems, stored, raw };
}
