/**
 * Index blocks: the metadata of a run of consecutive segments of one timeline, gathered into one
 * immutable object, so that a host rebuilding its catalog reads a handful of objects per thousand
 * segments instead of one per segment.
 *
 *   index/<timeline, 8 hex>/<first segment's name>.<count>.zst     count 16 or 256; the first
 *                                                                   segment's number a multiple of it
 *
 * A block is an ordinary walship object (envelope.ts: metadata frame with the SHA-256, then zstd)
 * holding JSON lines, one per segment: its index entry, what its object's metadata says (size,
 * checksums, push time, the scan of its records) and its stored size. archive-push writes a block
 * once its catalog holds every segment of it with its scan (the 16-block of the segment it has
 * just pushed first, then the 256-block around it), create-only: a block is never changed, and
 * one another host wrote first is kept. Blocks are a cache of the objects' own metadata: a missing or damaged block
 * only costs the reader the segments' own metadata reads.
 */
import type { StorageDriver } from '../storage/driver.js';
import type { Catalog, WalFileRow } from '../catalog/catalog.js';
import { logger } from '../log.js';
import { hex8, segmentName, segNoFromLogSeg } from '../wal/names.js';
import { decodeObject, encodeObject, sha256, type ObjectMeta } from './envelope.js';

export const INDEX_PREFIX = 'index/';
/** Block sizes, smallest first: a larger block is written once the smaller ones inside it are. */
export const BLOCK_SIZES = [16, 256] as const;

/** What the catalog needs of one archived file: its object's metadata, and the object's size. */
export interface IndexEntry {
  name: string;
  rawSize: number;
  storedSize: number;
  sha256: string;
  bodySha256: string | null;
  pushedAt: string;
  /** The packed scan (envelope.ts `scan`); absent for objects of older walship and other kinds. */
  scan?: string;
}

export function entryFromMeta(meta: ObjectMeta, storedSize: number): IndexEntry {
  return {
    name: meta.name,
    rawSize: meta.rawSize,
    storedSize,
    sha256: meta.sha256,
    bodySha256: meta.bodySha256 ?? null,
    pushedAt: meta.pushedAt,
    ...(meta.scan !== undefined && { scan: meta.scan }),
  };
}

function entryFromRow(r: WalFileRow): IndexEntry {
  return {
    name: r.name,
    rawSize: r.raw_size,
    storedSize: r.stored_size,
    sha256: r.sha256,
    bodySha256: r.body_sha256,
    pushedAt: r.pushed_at,
    ...(r.scan_record !== null && { scan: r.scan_record }),
  };
}


export function blockKey(timeline: number, firstSeg: number, count: number, segSize: number): string {
  return `${INDEX_PREFIX}${hex8(timeline)}/${segmentName(timeline, firstSeg, segSize)}.${count}.zst`;
}

export interface BlockRef {
  key: string;
  timeline: number;
  firstSeg: number;
  count: number;
}

const BLOCK_RE = /^index\/([0-9A-F]{8})\/([0-9A-F]{8})([0-9A-F]{16})\.(\d+)\.zst$/;

/** The block a key names, or null for any other key. */
export function parseBlockKey(key: string, segSize: number): BlockRef | null {
  const m = BLOCK_RE.exec(key);
  if (!m || m[1] !== m[2]) return null;
  const count = Number(m[4]);
  if (!(BLOCK_SIZES as readonly number[]).includes(count)) return null;
  const firstSeg = segNoFromLogSeg(m[3]!, segSize);
  if (firstSeg % count !== 0) return null;
  return { key, timeline: parseInt(m[1]!, 16), firstSeg, count };
}

/**
 * After segment `segNo` of `timeline` was indexed: writes the blocks it completes (never fails:
 * a block is an optimization, and the segment is archived whatever happens here).
 */
export async function writeCompletedBlocks(storage: StorageDriver, cat: Catalog, timeline: number, segNo: number, segSize: number): Promise<void> {
  for (const count of BLOCK_SIZES) {
    const first = segNo - (segNo % count);
    const key = blockKey(timeline, first, count, segSize);
    try {
      if (cat.hasIndexBlock(timeline, first, count)) continue;
      const have = cat.segmentCount(timeline, first, first + count - 1);
      if (have.segments !== count || have.withRecord !== count) return; // nor is any larger block complete
      const body = Buffer.from(cat.segmentsBetween(timeline, first, first + count - 1).map((r) => JSON.stringify(entryFromRow(r))).join('\n') + '\n');
      const { object } = await encodeObject(
        body,
        { format: 1, name: key, sha256: sha256(body), rawSize: body.length, compression: 'zstd', pushedAt: new Date().toISOString(), timeline },
        3,
      );
      await storage.putIfAbsent(key, object, { contentType: 'application/zstd' });
      cat.write(`record index block ${key}`, () => cat.addIndexBlock(timeline, first, count, key));
      logger.debug('index block written', { key });
    } catch (err) {
      logger.warn('cannot write an index block; a catalog rebuild reads these segments one by one instead', { key, error: (err as Error).message });
      return;
    }
  }
}

/** The entries of a block read from the repository; throws EnvelopeError (or a parse error) when it is damaged. */
export async function readBlock(storage: StorageDriver, ref: BlockRef): Promise<IndexEntry[] | null> {
  const obj = await storage.get(ref.key);
  if (obj === null) return null;
  const { meta, raw } = await decodeObject(obj);
  if (meta.name !== ref.key) throw new Error(`it holds ${meta.name}`);
  const entries = raw
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as IndexEntry);
  if (entries.length !== ref.count) throw new Error(`it lists ${entries.length} segments, not ${ref.count}`);
  return entries;
}
