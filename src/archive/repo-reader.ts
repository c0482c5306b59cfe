/**
 * Reading the repository's WAL objects back as catalog input, for sync and rebuild
 * (sync/sync.ts), and for push's neighbour checks (continuity.ts): an archived file's object as
 * the catalog indexes it (catalog/index-file.ts), or just its metadata frame.
 *
 * A segment's or .partial's entry comes from an index block covering it (index-blocks.ts) or,
 * failing that, from its object's metadata frame (one ranged read); its scan is the one push
 * stored in the metadata. History and backup history files are read whole: they are small, and
 * their content is what the catalog records. With `rescan`, an object without a stored scan
 * (pushed by older walship) is downloaded and scanned.
 */
import type { StorageDriver } from '../storage/driver.js';
import type { ArchivedFile } from '../catalog/index-file.js';
import { WalshipError, asWalshipError } from '../errors.js';
import { parseWalFileName, segNoFromLogSeg, type WalFileName } from '../wal/names.js';
import { SegmentValidator, validateSegment, type SegmentInfo } from '../wal/page.js';
import { SegmentScanner, type ScanResult } from '../wal/scanner.js';
import { judgeScan, scanArchivedFile, scanOptionsFor } from '../wal/scan-file.js';
import { decodeMeta, decodeObject, decodeObjectStream, EnvelopeError, unpackScan, type ObjectMeta, type Recorded } from './envelope.js';
import { WHOLE_MAX } from './read-pieces.js';
import { objectKeyFor, fileNameFromKey } from './keys.js';
import { BLOCK_SIZES, readBlock, type BlockRef, type IndexEntry, entryFromMeta } from './index-blocks.js';
import { validateFile } from './validate.js';

/** The first read of an object's metadata frame: enough for any frame but those of the busiest segments. */
const FRAME_READ_BYTES = 256 * 1024;

/** What the repository's identity says of every segment. */
export interface SegmentShape {
  segSize: number;
  pgMajor: number;
}

export function damaged(key: string, storage: StorageDriver, why: string): WalshipError {
  return new WalshipError('OBJECT_CORRUPT', `${storage.location}/${key} is damaged: ${why}`);
}

/** The metadata frame of the object at `key`, or null when the object is gone. */
export async function readFrame(storage: StorageDriver, key: string): Promise<ObjectMeta | null> {
  let buf = await storage.getRange(key, 0, FRAME_READ_BYTES);
  if (buf === null) return null;
  if (buf.length >= 8 && buf.length === FRAME_READ_BYTES) {
    const need = 8 + buf.readUInt32LE(4);
    if (need > buf.length) buf = (await storage.getRange(key, 0, need)) ?? buf;
  }
  try {
    return decodeMeta(buf).meta;
  } catch (err) {
    if (err instanceof EnvelopeError) throw damaged(key, storage, err.message);
    throw err;
  }
}

/** A listed object that is an archived WAL file: its key, size and parsed name. */
export interface ListedFile {
  key: string;
  size: number;
  file: WalFileName;
}

export function listedFile(key: string, size: number): ListedFile | null {
  const name = fileNameFromKey(key);
  const file = name === null ? null : parseWalFileName(name);
  return file && objectKeyFor(file) === key ? { key, size, file } : null;
}

/** The segment number of a segment, .partial or .backup file (-1 for a history file). */
export function segNoOf(file: WalFileName, segSize: number): number {
  return file.logSeg === undefined ? -1 : segNoFromLogSeg(file.logSeg, segSize);
}

/**
 * The catalog input for a listed file: from `entry` (an index block's) when it is given and its
 * stored size is the object's, else from the object itself.
 */
export async function readArchivedFile(storage: StorageDriver, l: ListedFile, shape: SegmentShape, opts: { entry?: IndexEntry | null; rescan?: boolean } = {}): Promise<ArchivedFile | null> {
  const { file, key } = l;
  if (file.kind === 'history' || file.kind === 'backup') {
    const obj = await storage.get(key);
    if (obj === null) return null;
    let meta: ObjectMeta;
    let raw: Buffer;
    try {
      ({ meta, raw } = await decodeObject(obj));
    } catch (err) {
      if (err instanceof EnvelopeError) throw damaged(key, storage, err.message);
      throw err;
    }
    const v = validateFile(file, raw);
    return { ...common(entryFromMeta(meta, obj.length), file, key), history: v.history ?? undefined, backup: v.backup ?? undefined };
  }
  let entry = opts.entry && opts.entry.name === file.name && opts.entry.storedSize === l.size ? opts.entry : null;
  if (!entry) {
    const meta = await readFrame(storage, key);
    if (meta === null) return null;
    if (meta.name !== file.name) throw damaged(key, storage, `it holds ${meta.name}`);
    entry = entryFromMeta(meta, l.size);
  }
  const segNo = segNoOf(file, shape.segSize);
  const place = { segNo, segSize: shape.segSize, startLsn: segNo * shape.segSize, pgMajor: shape.pgMajor };
  const out: ArchivedFile = { ...common(entry, file, key), segment: place, scanRecord: entry.scan ?? null };
  if (entry.scan !== undefined) {
    try {
      out.scan = await unpackScan(entry.scan, place.startLsn);
    } catch (err) {
      if (err instanceof EnvelopeError) throw damaged(key, storage, err.message);
      throw err;
    }
  } else if (opts.rescan) {
    Object.assign(out, await rescan(storage, l, shape));
  }
  return out;
}

function common(e: IndexEntry, file: WalFileName, key: string): Omit<ArchivedFile, 'segment' | 'scan'> {
  return { file, rawSize: e.rawSize, storedSize: e.storedSize, sha256: e.sha256, bodySha256: e.bodySha256, objectKey: key, pushedAt: e.pushedAt };
}

/**
 * Downloads a segment or .partial and reads its records, as push does: its scan, and (a file of
 * up to 16 MiB) the file for what spans into it; a larger one is read in pieces (readSegmentObject).
 */
export async function rescan(storage: StorageDriver, l: ListedFile, shape: SegmentShape): Promise<Pick<ArchivedFile, 'scan' | 'raw'>> {
  if (shape.segSize > WHOLE_MAX) {
    let read: SegmentObject | null;
    try {
      read = await readSegmentObject(storage, l.key, l.file);
    } catch (err) {
      if (err instanceof EnvelopeError || asWalshipError(err).code === 'INVALID_WAL') throw damaged(l.key, storage, (err as Error).message);
      throw err;
    }
    if (read === null) throw new WalshipError('OBJECT_LOST', `${storage.location}/${l.key} disappeared while it was being read`);
    return { scan: read.scan };
  }
  const obj = await storage.get(l.key);
  if (obj === null) throw new WalshipError('OBJECT_LOST', `${storage.location}/${l.key} disappeared while it was being read`);
  let raw: Buffer;
  try {
    ({ raw } = await decodeObject(obj));
  } catch (err) {
    if (err instanceof EnvelopeError) throw damaged(l.key, storage, err.message);
    throw err;
  }
  let seg: SegmentInfo;
  try {
    seg = validateSegment(raw, l.file);
  } catch (err) {
    throw damaged(l.key, storage, (err as Error).message);
  }
  return { scan: scanArchivedFile(raw, l.file, seg, { archived: true }), raw };
}

/**
 * The object at `key` as a stream, its metadata read and checked against `recorded` first
 * (decodeObjectStream): null when absent; `raw` its content as it is decompressed (in one reused
 * buffer), `size()` the stored bytes read so far. Throws EnvelopeError when the metadata is
 * unreadable or disagrees (the stream is closed then).
 */
export async function openObject(storage: StorageDriver, key: string, recorded?: Recorded): Promise<{ meta: ObjectMeta; raw: AsyncGenerator<Buffer, void>; size(): number } | null> {
  const stream = await storage.getStream(key);
  if (stream === null) return null;
  let size = 0;
  const counted = (async function* () {
    for await (const chunk of stream) {
      size += chunk.length;
      yield chunk;
    }
  })();
  try {
    const { meta, raw } = await decodeObjectStream(counted, recorded, { reuse: true });
    return { meta, raw, size: () => size };
  } catch (err) {
    await counted.return(undefined);
    throw err;
  }
}

/** An archived segment or .partial read in pieces: its metadata, its stored and raw sizes, what its pages and records say. */
export interface SegmentObject {
  meta: ObjectMeta;
  storedSize: number;
  rawSize: number;
  seg: SegmentInfo;
  scan: ScanResult;
}

/**
 * A segment's or .partial's object read as a stream and checked in memory that does not grow
 * with its size: decoded and verified (against `recorded`, else its own metadata), its pages
 * validated and its records scanned piece by piece as push reads a large file (read-pieces.ts).
 * Null when the object is absent. Throws EnvelopeError when the object is damaged (before any
 * complaint about its content, as decoding it whole would: the stream is read to its end
 * first), INVALID_WAL or OBJECT_CORRUPT when its content is not sound WAL.
 */
export async function readSegmentObject(storage: StorageDriver, key: string, file: WalFileName, recorded?: Recorded): Promise<SegmentObject | null> {
  const decoded = await openObject(storage, key, recorded);
  if (decoded === null) return null;
  const { meta } = decoded;
  let validator: SegmentValidator | undefined;
  let scanner: SegmentScanner | undefined;
  let off = 0;
  let failure: unknown = null;
  for await (const piece of decoded.raw) {
    if (failure === null) {
      try {
        validator ??= new SegmentValidator(piece, file, meta.rawSize);
        scanner ??= new SegmentScanner(scanOptionsFor(file, validator.info()));
        validator.pages(piece, off);
        scanner.push(piece, off + piece.length >= meta.rawSize);
      } catch (err) {
        failure = err; // reported once the object is known sound
      }
    }
    off += piece.length;
  }
  if (failure !== null) throw failure;
  if (!validator || !scanner) throw new EnvelopeError('it decompresses to nothing');
  return { meta, storedSize: decoded.size(), rawSize: off, seg: validator.info(), scan: judgeScan(scanner.result(), file, { archived: true }) };
}

/**
 * Index blocks, read when first needed: the entry of a segment from the largest block covering
 * it. A damaged block is set aside (its segments are read one by one); the last few blocks are
 * kept, as a listing in key order walks through them one after the other.
 */
export class BlockReader {
  private readonly loaded = new Map<string, Promise<Map<string, IndexEntry> | null>>();
  /** The blocks by timeline, size and first segment. */
  private readonly refs = new Map<string, BlockRef>();
  /** Blocks read, and blocks found damaged. */
  read = 0;
  damaged: string[] = [];

  constructor(
    private readonly storage: StorageDriver,
    refs: readonly BlockRef[],
  ) {
    for (const r of refs) this.refs.set(`${r.timeline}/${r.count}/${r.firstSeg}`, r);
  }

  /** The entry of segment `segNo` of `timeline` named `name`, or null when no readable block has it. */
  async entry(timeline: number, segNo: number, name: string): Promise<IndexEntry | null> {
    for (const count of [...BLOCK_SIZES].reverse()) {
      const ref = this.refs.get(`${timeline}/${count}/${segNo - (segNo % count)}`);
      if (!ref) continue;
      const e = (await this.load(ref))?.get(name);
      if (e) return e;
    }
    return null;
  }

  private load(ref: BlockRef): Promise<Map<string, IndexEntry> | null> {
    let p = this.loaded.get(ref.key);
    if (!p) {
      p = readBlock(this.storage, ref).then(
        (entries) => {
          this.read++;
          return entries && new Map(entries.map((e) => [e.name, e]));
        },
        (err: unknown) => {
          this.damaged.push(`${ref.key} (${(err as Error).message})`);
          return null;
        },
      );
      this.loaded.set(ref.key, p);
      // Listed in key order, the reader is done with all but the newest few.
      while (this.loaded.size > 4) this.loaded.delete(this.loaded.keys().next().value!);
    }
    return p;
  }
}
