/**
 * The format of an archived object: a zstd skippable frame holding walship's metadata as JSON,
 * then the zstd-compressed file. `zstd -d` decompresses it as is (it skips the metadata frame),
 * so an archived file can be recovered by hand without walship.
 *
 * The metadata makes every object self-describing: a catalog can be rebuilt from the objects
 * alone (on S3 it is also stored as object metadata, so a HEAD is enough).
 *
 * Verification. The metadata records the SHA-256 of the file (`sha256`) and of the compressed
 * data (`bodySha256`; objects of early walship lack it), and the zstd frame carries zstd's own
 * checksum of what it decompresses to. A reader checks the compressed data's SHA-256 (about a
 * fifteenth of the bytes of a WAL segment) and lets zstd check its output: the compressed data
 * is then the very data push wrote, and it decompresses to one content only, the file push
 * read. Objects without `bodySha256`, frames without zstd's checksum, and catalog rows that
 * predate the column are verified the old way, by the SHA-256 of the decompressed file.
 */
import { createHash } from 'node:crypto';
import { bodySize, type Body, type BodySource } from '../storage/driver.js';
import { decodeScanRecord, encodeScanRecord, type ScanFacts, type ScanRecord } from '../wal/scan-record.js';

/** One of zstd's skippable-frame magics (0x184D2A50-0x184D2A5F). */
const SKIPPABLE_MAGIC = 0x184d2a57;
const ZSTD_MAGIC = 0xfd2fb528;
/** Enough to read the metadata frame of any object with one ranged read. */
export const HEADER_READ_BYTES = 4096;

export interface ObjectMeta {
  format: 1;
  name: string;
  sha256: string;
  /** SHA-256 of the compressed data after the metadata frame; absent in objects of older walship. */
  bodySha256?: string;
  rawSize: number;
  compression: 'zstd';
  pushedAt: string;
  timeline: number;
  /** Bytes of compressed data after the metadata frame: a shorter object is incomplete. */
  bodySize: number;
  /** Segments only: what the long page header said. */
  systemIdentifier?: string;
  pgMajor?: number;
  segSize?: number;
  startLsn?: number;
  /**
   * Segments and .partial files: what the scan of the file's records said (wal/scan-record.ts),
   * zstd-compressed, base64; absent in objects of older walship.
   */
  scan?: string;
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

let zstd: typeof import('zstd-napi') | undefined;
async function loadZstd(): Promise<typeof import('zstd-napi')> {
  zstd ??= await import('zstd-napi');
  return zstd;
}

/** A file's compressed data and the SHA-256 of it: an object's body (in memory, or a large file's in a local file). */
export interface EncodedBody {
  body: Body;
  bodySha256: string;
}

/** A body in memory (what compressBody makes of a file read whole). */
export type CompressedBody = EncodedBody & { body: Buffer };

/** zstd's native binding (its streaming contexts). A CommonJS native module: imported from an ES module, its exports are its default. */
async function loadBinding(): Promise<typeof import('zstd-napi/binding.js')> {
  const binding = await import('zstd-napi/binding.js');
  return 'DCtx' in binding ? binding : (binding as unknown as { default: typeof binding }).default;
}

/**
 * The content of a zstd frame (or frames) in `body`, decompressed in pieces of at most `piece`
 * bytes (each a fresh buffer). Throws EnvelopeError naming zstd's complaint when it is damaged
 * or ends early.
 */
export async function* decompressPieces(body: Buffer, piece = 1024 * 1024): AsyncGenerator<Buffer, void> {
  const dctx = new (await loadBinding()).DCtx();
  let src = body;
  let left = 1;
  while (src.length > 0 || left !== 0) {
    const out = Buffer.allocUnsafe(piece);
    let produced: number;
    let consumed: number;
    try {
      [left, produced, consumed] = dctx.decompressStream(out, src);
    } catch (err) {
      throw new EnvelopeError((err as Error).message);
    }
    src = src.subarray(consumed);
    if (produced > 0) yield out.subarray(0, produced);
    else if (consumed === 0) {
      if (left !== 0) throw new EnvelopeError('the frame ends early');
      break;
    }
  }
}

/**
 * Compresses a file handed over in pieces into an object's body as compressBody would (one zstd
 * frame with zstd's checksum and the content's size), for a file too large to hold whole: each
 * piece's output is passed to `out` (which may keep it: it is a fresh buffer), and the SHA-256
 * of the whole output is `bodySha256` once `end` returned.
 */
export class StreamCompressor {
  private readonly hash = createHash('sha256');
  private bodySize = 0;
  private buf = Buffer.allocUnsafe(1024 * 1024);

  private constructor(
    private readonly cctx: InstanceType<Awaited<ReturnType<typeof loadBinding>>['CCtx']>,
    private readonly endOp: { continue: number; end: number },
    private readonly out: (chunk: Buffer) => void,
  ) {}

  /** `size`: the content's size when known (the frame then records it). */
  static async start(level: number, size: number | undefined, out: (chunk: Buffer) => void): Promise<StreamCompressor> {
    const b = await loadBinding();
    const cctx = new b.CCtx();
    cctx.setParameter(b.CParameter.compressionLevel, level);
    cctx.setParameter(b.CParameter.checksumFlag, 1);
    if (size !== undefined) cctx.setPledgedSrcSize(size);
    return new StreamCompressor(cctx, { continue: b.EndDirective.continue, end: b.EndDirective.end }, out);
  }

  private run(src: Buffer, op: number): void {
    for (;;) {
      const [left, produced, consumed] = this.cctx.compressStream2(this.buf, src, op as never);
      src = src.subarray(consumed);
      if (produced > 0) {
        const chunk = this.buf.subarray(0, produced);
        this.hash.update(chunk);
        this.bodySize += produced;
        this.out(Buffer.from(chunk));
      }
      if (src.length === 0 && (op === this.endOp.continue ? produced < this.buf.length : left === 0)) return;
    }
  }

  /** Compresses the next piece (zstd keeps what it needs of it: the buffer may be reused after). */
  write(piece: Buffer): void {
    if (piece.length > 0) this.run(piece, this.endOp.continue);
  }

  /** Ends the frame; the body's size and SHA-256. */
  end(): { size: number; bodySha256: string } {
    this.run(Buffer.alloc(0), this.endOp.end);
    return { size: this.bodySize, bodySha256: this.hash.digest('hex') };
  }
}

/** Compresses `raw` (zstd, with zstd's checksum of the content) into an object's body. */
export async function compressBody(raw: Buffer, level: number): Promise<CompressedBody> {
  const z = await loadZstd();
  const body = z.compress(raw, { compressionLevel: level, checksumFlag: true });
  return { body, bodySha256: sha256(body) };
}

/** Frames a compressed body with its metadata; returns the object and the final metadata. */
export function frameObject(partial: Omit<ObjectMeta, 'bodySize' | 'bodySha256'>, { body, bodySha256 }: EncodedBody): { object: Body; meta: ObjectMeta } {
  const meta: ObjectMeta = { ...partial, bodySha256, bodySize: bodySize(body) };
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const head = Buffer.alloc(8);
  head.writeUInt32LE(SKIPPABLE_MAGIC, 0);
  head.writeUInt32LE(json.length, 4);
  const front = Buffer.concat([head, json]);
  return { object: Buffer.isBuffer(body) ? Buffer.concat([front, body]) : after(front, body), meta };
}

/** A source of `front`'s bytes, then `rest`'s. */
function after(front: Buffer, rest: BodySource): BodySource {
  return {
    size: front.length + rest.size,
    async read(offset, length) {
      const end = Math.min(offset + length, front.length + rest.size);
      if (end <= front.length) return front.subarray(offset, end);
      const tail = await rest.read(Math.max(0, offset - front.length), end - Math.max(offset, front.length));
      return offset >= front.length ? tail : Buffer.concat([front.subarray(offset), tail]);
    },
  };
}

/** Compresses `raw` and frames it with its metadata; returns the object and the final metadata. */
export async function encodeObject(
  raw: Buffer,
  partial: Omit<ObjectMeta, 'bodySize' | 'bodySha256'>,
  level: number,
): Promise<{ object: Buffer; meta: ObjectMeta }> {
  return frameObject(partial, await compressBody(raw, level)) as { object: Buffer; meta: ObjectMeta };
}

export class EnvelopeError extends Error {}

/** Reads the metadata frame at the start of an object (the whole object or its first bytes). */
export function decodeMeta(buf: Buffer): { meta: ObjectMeta; bodyOffset: number } {
  if (buf.length < 8 || buf.readUInt32LE(0) !== SKIPPABLE_MAGIC) {
    throw new EnvelopeError('object does not start with walship metadata');
  }
  const len = buf.readUInt32LE(4);
  if (8 + len > buf.length) throw new EnvelopeError('object metadata is truncated');
  let meta: ObjectMeta;
  try {
    meta = JSON.parse(buf.subarray(8, 8 + len).toString('utf8')) as ObjectMeta;
  } catch {
    throw new EnvelopeError('object metadata is not valid JSON');
  }
  if (
    meta.format !== 1 ||
    typeof meta.sha256 !== 'string' ||
    typeof meta.rawSize !== 'number' ||
    typeof meta.name !== 'string' ||
    typeof meta.bodySize !== 'number'
  ) {
    throw new EnvelopeError('object metadata lacks required fields');
  }
  return { meta, bodyOffset: 8 + len };
}

/** What a catalog recorded of a file: an object must agree. `bodySha256` null: recorded before the column. */
export interface Recorded {
  sha256: string;
  bodySha256: string | null;
}

/** Whether a zstd frame header says the frame ends with zstd's checksum of its content. */
function frameChecksContent(body: Buffer): boolean {
  return body.length > 4 && (body[4]! & 0x04) !== 0;
}

/** The metadata against what the catalog recorded: throws EnvelopeError on a disagreement. */
function checkAgainstRecorded(meta: ObjectMeta, recorded: Recorded | undefined): void {
  if (meta.compression !== 'zstd') throw new EnvelopeError(`unknown compression "${meta.compression}"`);
  if (recorded && meta.sha256 !== recorded.sha256) {
    throw new EnvelopeError(`its checksum ${meta.sha256} differs from the catalog's ${recorded.sha256}`);
  }
  if (recorded && recorded.bodySha256 !== null && meta.bodySha256 !== recorded.bodySha256) {
    throw new EnvelopeError(`its compressed data's checksum ${meta.bodySha256 ?? '(none)'} differs from the catalog's ${recorded.bodySha256}`);
  }
}

const sizeError = (bodyLength: number, meta: ObjectMeta) =>
  new EnvelopeError(`object is ${bodyLength < meta.bodySize ? 'incomplete' : 'too long'}: ${bodyLength} bytes of compressed data, expected ${meta.bodySize}`);

/** Whether the compressed data's SHA-256 proves it (else the content's SHA-256 must: the top of this file). */
const checkedByBody = (meta: ObjectMeta, recorded: Recorded | undefined, bodyStart: Buffer) =>
  typeof meta.bodySha256 === 'string' && recorded?.bodySha256 !== null && frameChecksContent(bodyStart);

/**
 * Decodes a whole object and verifies it: against `recorded` when a catalog has the file, else
 * against its own metadata (see the top of this file). Throws EnvelopeError describing what is
 * wrong (a disagreement with the catalog, undecodable data, size or checksum mismatch).
 */
export async function decodeObject(buf: Buffer, recorded?: Recorded): Promise<{ meta: ObjectMeta; raw: Buffer }> {
  const { meta, bodyOffset } = decodeMeta(buf);
  checkAgainstRecorded(meta, recorded);
  const body = buf.subarray(bodyOffset);
  if (body.length !== meta.bodySize) throw sizeError(body.length, meta);
  if (body.length < 4 || body.readUInt32LE(0) !== ZSTD_MAGIC) throw new EnvelopeError('compressed data is missing or not zstd');
  const byBody = checkedByBody(meta, recorded, body);
  if (byBody) {
    const sum = sha256(body);
    if (sum !== meta.bodySha256) throw new EnvelopeError(`checksum mismatch: compressed data sha256 ${sum}, recorded ${meta.bodySha256}`);
  }
  const z = await loadZstd();
  let raw: Buffer;
  try {
    raw = z.decompress(body);
  } catch (err) {
    throw new EnvelopeError(`compressed data is corrupt (${(err as Error).message})`);
  }
  if (raw.length !== meta.rawSize) throw new EnvelopeError(`decompressed to ${raw.length} bytes, expected ${meta.rawSize}`);
  if (!byBody) {
    const sum = sha256(raw);
    if (sum !== meta.sha256) throw new EnvelopeError(`checksum mismatch: content sha256 ${sum}, recorded ${meta.sha256}`);
  }
  return { meta, raw };
}

/** Metadata frames larger than this are taken for damage (real ones are a few KiB). */
const MAX_META_BYTES = 16 * 1024 * 1024;
/**
 * The most bytes of content decodeObjectStream hands on at a time: a 16 MiB segment in one piece
 * (one write, as fast as decoding it whole), a larger file in pieces of this size.
 */
export const RAW_CHUNK = 16 * 1024 * 1024;

/**
 * decodeObject for an object read as a stream (StorageDriver.getStream), in bounded memory: its
 * metadata is read and checked against `recorded` first (before anything is returned), then
 * `raw` yields the content as it is decompressed. Every check decodeObject makes is made, the
 * last ones (sizes, checksums, zstd's own) when the object ends: `raw` throws EnvelopeError then,
 * before it is done, so that a consumer that writes the content somewhere makes it visible only
 * after `raw` finished. A damaged object is read to its end, so that the error names what is
 * wrong as decodeObject would (a size or a checksum before a zstd error). With `reuse`, every
 * piece of content is in one buffer, overwritten by the next: for a consumer done with each
 * piece before it asks for the next (one that writes it out), so that memory stays one piece.
 */
export async function decodeObjectStream(
  chunks: AsyncIterator<Buffer>,
  recorded?: Recorded,
  opts: { reuse?: boolean } = {},
): Promise<{ meta: ObjectMeta; raw: AsyncGenerator<Buffer, void> }> {
  const parts: Buffer[] = [];
  let have = 0;
  let ended = false;
  const more = async () => {
    const n = await chunks.next();
    if (n.done) ended = true;
    else {
      parts.push(n.value);
      have += n.value.length;
    }
  };
  // The metadata frame and the first bytes of the body (zstd's frame header says whether zstd checks its content).
  let need = 8;
  while (!ended && have < need) {
    await more();
    if (have >= 8 && need === 8) {
      const head = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      if (head.readUInt32LE(0) !== SKIPPABLE_MAGIC) break;
      const len = head.readUInt32LE(4);
      if (len > MAX_META_BYTES) throw new EnvelopeError('object metadata is too large');
      need = 8 + len + 5;
    }
  }
  const head = Buffer.concat(parts);
  const { meta, bodyOffset } = decodeMeta(head);
  checkAgainstRecorded(meta, recorded);
  return { meta, raw: streamBody(meta, recorded, head.subarray(bodyOffset), ended ? null : chunks, opts.reuse === true) };
}

async function* streamBody(meta: ObjectMeta, recorded: Recorded | undefined, first: Buffer, rest: AsyncIterator<Buffer> | null, reuse: boolean): AsyncGenerator<Buffer, void> {
  // As decodeObject judges: its size, then zstd's magic, then its checksum, then zstd's verdict.
  const notZstd = first.length < 4 || first.readUInt32LE(0) !== ZSTD_MAGIC;
  const byBody = !notZstd && checkedByBody(meta, recorded, first);
  const bodyHash = byBody ? createHash('sha256') : null;
  const rawHash = byBody ? null : createHash('sha256');
  const dctx = new (await loadBinding()).DCtx();
  let bodyLength = 0;
  let rawLength = 0;
  let zstdError: string | null = notZstd ? 'not zstd' : null;
  /** zstd's hint after the last call: 0 once its frame ended (and its checksum was checked). */
  let frameLeft = 1;
  // Sized by what the metadata says is left (at least 64 KiB, in case it lies), at most RAW_CHUNK.
  const outSize = () => Math.min(RAW_CHUNK, Math.max(64 * 1024, meta.rawSize - rawLength));
  let out = Buffer.allocUnsafe(outSize());
  let outLen = 0;
  const take = () => {
    const full = out.subarray(0, outLen);
    rawLength += full.length;
    rawHash?.update(full);
    if (!reuse) out = Buffer.allocUnsafe(outSize());
    outLen = 0;
    return full;
  };
  for (let chunk: Buffer | null = first; chunk !== null; ) {
    bodyHash?.update(chunk);
    bodyLength += chunk.length;
    let src = chunk;
    while (zstdError === null && src.length > 0) {
      try {
        const [hint, produced, consumed] = dctx.decompressStream(out.subarray(outLen), src);
        outLen += produced;
        src = src.subarray(consumed);
        frameLeft = hint;
        if (produced === 0 && consumed === 0) break;
      } catch (err) {
        zstdError = (err as Error).message;
      }
      if (outLen === out.length) yield take();
    }
    if (rest === null) break;
    const n = await rest.next();
    chunk = n.done ? null : n.value;
  }
  // Whatever zstd still holds of the content (its output buffer filled before its input ran out).
  while (zstdError === null && frameLeft !== 0) {
    try {
      const [hint, produced] = dctx.decompressStream(out.subarray(outLen), Buffer.alloc(0));
      outLen += produced;
      frameLeft = hint;
      if (produced === 0) break;
    } catch (err) {
      zstdError = (err as Error).message;
    }
    if (outLen === out.length) yield take();
  }
  if (bodyLength !== meta.bodySize) throw sizeError(bodyLength, meta);
  if (notZstd) throw new EnvelopeError('compressed data is missing or not zstd');
  if (bodyHash) {
    const sum = bodyHash.digest('hex');
    if (sum !== meta.bodySha256) throw new EnvelopeError(`checksum mismatch: compressed data sha256 ${sum}, recorded ${meta.bodySha256}`);
  }
  if (zstdError === null && frameLeft !== 0) zstdError = 'the frame ends early';
  if (zstdError !== null) throw new EnvelopeError(`compressed data is corrupt (${zstdError})`);
  if (outLen > 0) yield take();
  if (rawLength !== meta.rawSize) throw new EnvelopeError(`decompressed to ${rawLength} bytes, expected ${meta.rawSize}`);
  if (rawHash) {
    const sum = rawHash.digest('hex');
    if (sum !== meta.sha256) throw new EnvelopeError(`checksum mismatch: content sha256 ${sum}, recorded ${meta.sha256}`);
  }
}

/**
 * The metadata as S3 user-metadata strings (lowercase keys), without the scan: S3 keeps at most
 * 2 KB of user metadata, and the scan is read from the metadata frame.
 */
export function metaToHeaders(meta: ObjectMeta): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta)) {
    if (v !== undefined && k !== 'scan') out[`walship-${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`] = String(v);
  }
  return out;
}

/** A scan as the metadata's `scan` field: its record (wal/scan-record.ts), zstd-compressed, base64. */
export async function packScan(scan: ScanFacts): Promise<string> {
  const z = await loadZstd();
  return z.compress(Buffer.from(JSON.stringify(encodeScanRecord(scan))), { compressionLevel: 3 }).toString('base64');
}

/** The scan a metadata `scan` field holds, for the segment starting at `startLsn`. Throws EnvelopeError when it is not readable. */
export async function unpackScan(packed: string, startLsn: number): Promise<ScanFacts> {
  const z = await loadZstd();
  try {
    return decodeScanRecord(JSON.parse(z.decompress(Buffer.from(packed, 'base64')).toString('utf8')) as ScanRecord, startLsn);
  } catch (err) {
    throw new EnvelopeError(`its scan record is unreadable (${(err as Error).message})`);
  }
}
