/**
 * archive-push: validate, checksum, check the history's continuity, compress, store durably, index.
 *
 * Order matters for safety: the repository write (durable, create-only) comes first and is
 * what makes the push succeed; the catalog is indexed after it. A crash between the two is
 * repaired by PostgreSQL's retry: the object is found identical and indexed then. A refused
 * file is recorded in the catalog (what `walship info` shows as refusals) until it is archived.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { FILE_REFUSALS, WalshipError, asWalshipError, describeSystemError } from '../errors.js';
import { segmentName, type WalFileName } from '../wal/names.js';
import { bodySize, type StorageDriver } from '../storage/driver.js';
import { WHOLE_MAX, readInPieces, spillDirFor } from './read-pieces.js';
import { openObject } from './repo-reader.js';
import { readFull } from '../local/read-full.js';
import { sendPendingGaps } from './gaps.js';
import { Catalog } from '../catalog/catalog.js';
import { logger } from '../log.js';
import { VERSION } from '../version.js';
import { checkIdentity, ensureIdentity, readIdentity } from './identity.js';
import { frameObject, metaToHeaders, packScan, sha256, EnvelopeError, type EncodedBody, type ObjectMeta } from './envelope.js';
import { inlineEncoder } from './body-encoder.js';
import type { ArchiveContext } from './context.js';
import { RECHECK_PREFIX, objectKeyFor } from './keys.js';
import { scanArchivedFile } from '../wal/scan-file.js';
import { indexArchivedFile } from '../catalog/index-file.js';
import { writeCompletedBlocks } from './index-blocks.js';
import { classifyOrRefuse, validateFile, type Validated } from './validate.js';
import { checkContinuity, loadNeighbour, loadNeighbours, type Neighbours } from './continuity.js';
import type { ScanFacts } from '../wal/scan-record.js';
import { awaitPredecessor, markStored } from './push-order.js';

export interface PushOptions {
  /**
   * The background pusher's state directory: store the segment only after the pusher's push of
   * its predecessor has stored it (push-order.ts); else the outcome is 'deferred'.
   */
  inOrder?: string;
}

export interface PushResult {
  name: string;
  /** 'deferred' (only with PushOptions.inOrder): nothing stored, the predecessor is not archived yet. */
  outcome: 'archived' | 'already-archived' | 'repaired' | 'deferred';
  rawSize: number;
  storedSize: number;
  sha256: string;
}

/**
 * What is archived under `key` already: null when nothing; else its metadata and whether the
 * whole object verifies (decodes, right size, right checksum). Read as a stream, in bounded memory.
 */
async function inspectExisting(storage: StorageDriver, key: string, retried = false): Promise<{ meta: ObjectMeta; size: number; damage: string | null } | null> {
  let decoded: Awaited<ReturnType<typeof openObject>>;
  try {
    decoded = await openObject(storage, key);
  } catch (err) {
    if (!(err instanceof EnvelopeError)) throw err;
    // Some object stores expose an upload while it is in flight: look once more before judging.
    if (!retried) {
      await new Promise((r) => setTimeout(r, UNREADABLE_RETRY_MS));
      return inspectExisting(storage, key, true);
    }
    throw new WalshipError(
      'OBJECT_CORRUPT',
      `archived object ${storage.location}/${key} is unreadable (${err.message}); walship cannot tell what it held, so it leaves it alone: inspect it, and move it away if it is garbage`,
    );
  }
  if (decoded === null) return null;
  try {
    for await (const _ of decoded.raw) {
      /* every check is made as it is read */
    }
    return { meta: decoded.meta, size: decoded.size(), damage: null };
  } catch (err) {
    if (!(err instanceof EnvelopeError)) throw err;
    return { meta: decoded.meta, size: decoded.size(), damage: err.message };
  }
}

/** How long to wait before reading an unreadable object a second time. */
const UNREADABLE_RETRY_MS = 300;

function conflict(name: string, archived: string, incoming: string): WalshipError {
  return new WalshipError(
    'WAL_CONFLICT',
    `${name} is already archived with different content (archived sha256 ${archived}, this file sha256 ${incoming}); ` +
      'refusing to overwrite: check that two clusters do not share this repository',
  );
}

export async function pushFile(ctx: ArchiveContext, path: string, opts: PushOptions = {}): Promise<PushResult> {
  try {
    const out = await push(ctx, path, opts);
    // The repository is reachable again: the gaps push_queue_max left while it was not go there.
    await sendPendingGaps(ctx.storage, ctx.catalogPath);
    return out;
  } catch (err) {
    const we = asWalshipError(err);
    if (FILE_REFUSALS.has(we.code)) noteRefusal(ctx, path, we);
    throw err;
  }
}

/**
 * Records a refusal in the catalog when PostgreSQL has the file `.ready` (it will retry it, and
 * archive nothing after it); never fails: the refusal is what the caller reports.
 */
function noteRefusal(ctx: ArchiveContext, path: string, we: WalshipError): void {
  const name = basename(path);
  const walDir = resolve(dirname(path));
  if (!existsSync(join(walDir, 'archive_status', `${name}.ready`))) return;
  try {
    const cat = ctx.catalog?.get() ?? Catalog.open(ctx.catalogPath)!;
    try {
      cat.write(`record the refusal of ${name}`, () => cat.noteRefusal(name, walDir, we.code, we.message));
    } finally {
      if (!ctx.catalog) cat.close();
    }
  } catch {
    /* a catalog that cannot be written: the server log has the error */
  }
}

async function push(ctx: ArchiveContext, path: string, opts: PushOptions): Promise<PushResult> {
  const file = classifyOrRefuse(path);
  const encoder = ctx.encoder ?? inlineEncoder;
  let raw: Buffer;
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw unreadable(path, err);
  }
  try {
    const size = await fh.stat().then((st) => st.size, (err) => Promise.reject(unreadable(path, err)));
    // A large segment (32 MiB and up) is read in pieces, in memory that does not grow with it.
    if (size > WHOLE_MAX && (file.kind === 'segment' || file.kind === 'partial')) return await pushInPieces(ctx, path, file, fh, size, opts);
    raw = await readWhole(fh, size, encoder.alloc).catch((err) => Promise.reject(unreadable(path, err)));
  } finally {
    await fh.close().catch(() => undefined);
  }
  const v = validateFile(file, raw);
  const key = objectKeyFor(file);
  const cat = ctx.catalog?.get() ?? Catalog.open(ctx.catalogPath)!;
  let encoding: Promise<EncodedBody> | undefined;
  const body = () => {
    encoding ??= encoder.encode(raw, ctx.compressLevel);
    encoding.catch(() => undefined);
    return encoding;
  };
  try {
    // Begun at once, awaited once the file is known sound: what is archived under this name and,
    // for a segment, its archived neighbours; and the compression when it runs beside this
    // thread (the agent's compression thread, while this one scans and checksums; on this
    // thread it waits until the file is known to be new). Nothing is written before every check passed.
    const seg = v.segment;
    if (encoder.parallel) body();
    const existingP = inspectExisting(ctx.storage, key);
    const loading = seg ? loadNeighbours(ctx.storage, cat, file, seg.segNo, seg.segSize) : Promise.resolve(null);
    for (const p of [existingP, loading]) p.catch(() => undefined);
    // Reading every record checks each one's CRC: a damaged record refuses the file before anything is stored.
    if (seg) v.scan = { result: scanArchivedFile(raw, file, seg), raw };
    const sum = sha256(raw);
    return await store(ctx, cat, { path, file, rawSize: raw.length, v, sum, key, body, existingP, loading }, opts);
  } finally {
    if (!ctx.catalog) cat.close();
    // The buffer goes back once its compression (if any) no longer reads it.
    const release = () => encoder.release(raw);
    if (encoding) void encoding.then(release, release);
    else release();
  }
}

const unreadable = (path: string, err: unknown) =>
  err instanceof WalshipError ? err : new WalshipError('FILE_UNREADABLE', `cannot read ${path}: ${describeSystemError(err)}`);

/**
 * push for a large segment or .partial, read in pieces (read-pieces.ts): validated, scanned,
 * hashed and compressed into a spill file piece by piece, then checked and stored as push stores
 * any file; the object is uploaded from the spill file.
 */
async function pushInPieces(ctx: ArchiveContext, path: string, file: WalFileName, fh: FileHandle, size: number, opts: PushOptions): Promise<PushResult> {
  const key = objectKeyFor(file);
  const cat = ctx.catalog?.get() ?? Catalog.open(ctx.catalogPath)!;
  try {
    const existingP = inspectExisting(ctx.storage, key);
    existingP.catch(() => undefined);
    const read = await readInPieces(fh, size, file, path, spillDirFor(ctx.catalogPath), ctx.compressLevel);
    try {
      const seg = read.v.segment!;
      const loading = loadNeighbours(ctx.storage, cat, file, seg.segNo, seg.segSize);
      loading.catch(() => undefined);
      return await store(ctx, cat, { path, file, rawSize: size, v: read.v, sum: read.sum, key, body: async () => read.body, existingP, loading }, opts);
    } finally {
      await read.close();
    }
  } finally {
    if (!ctx.catalog) cat.close();
  }
}

interface Pending {
  path: string;
  file: WalFileName;
  rawSize: number;
  v: Validated;
  sum: string;
  key: string;
  /** The compressed body: begun on the first call. */
  body: () => Promise<EncodedBody>;
  existingP: ReturnType<typeof inspectExisting>;
  loading: Promise<Neighbours | null>;
}

/** The checks against the repository, then the durable write and the index. */
async function store(ctx: ArchiveContext, cat: Catalog, { path, file, rawSize, v, sum, key, body, existingP, loading }: Pending, opts: PushOptions): Promise<PushResult> {
  await ctx.storage.check();
  const identity = v.segment
    ? await ensureIdentity(ctx.storage, { systemIdentifier: v.segment.systemIdentifier, pgMajor: v.segment.pgMajor, segSize: v.segment.segSize }, VERSION)
    : await readIdentity(ctx.storage);
  if (v.segment && identity) {
    checkIdentity(identity, { ...v.segment }, file.name, ctx.storage.location);
  }

  let outcome: PushResult['outcome'] = 'archived';
  const seg = v.segment;
  // The neighbours matter only to a new file (an identical one was checked when it was stored).
  let existing = await existingP;
  const neighbours = existing === null ? await loading : null;
  // A new file must continue the history archived around it.
  if (neighbours && v.scan) checkContinuity(file, v.scan.result, neighbours);
  let storedSize = 0;
  let bodySha256: string | undefined;
  let pushedAt = new Date().toISOString();
  // What the records say travels with the object: any host can index it without rescanning.
  let scanRecord = v.scan ? await packScan(v.scan.result) : undefined;
  const build = async () =>
    frameObject(
      {
        format: 1,
        name: file.name,
        sha256: sum,
        rawSize,
        compression: 'zstd',
        pushedAt,
        timeline: file.timeline,
        ...(v.segment && {
          systemIdentifier: v.segment.systemIdentifier,
          pgMajor: v.segment.pgMajor,
          segSize: v.segment.segSize,
          startLsn: v.segment.startLsn,
        }),
        ...(scanRecord !== undefined && { scan: scanRecord }),
      },
      await body(),
    );
  if (existing === null) {
    const { object, meta } = await build();
    // The pusher: compressed already, stored only after the predecessor it is pushing (push-order.ts).
    if (opts.inOrder && seg && v.scan && neighbours?.prev === null && !(await afterPredecessor(ctx, cat, path, file, seg, v.scan.result, neighbours, opts.inOrder))) {
      return { name: file.name, outcome: 'deferred', rawSize, storedSize: 0, sha256: sum };
    }
    const res = await ctx.storage.putIfAbsent(key, object, { meta: metaToHeaders(meta), contentType: 'application/zstd' });
    storedSize = bodySize(object);
    bodySha256 = meta.bodySha256;
    if (res === 'exists') {
      // A concurrent push stored it first: the same content is fine, other content a conflict.
      existing = await inspectExisting(ctx.storage, key);
      if (!existing) throw new WalshipError('REPOSITORY_UNAVAILABLE', `${key} was reported to exist but cannot be read back`);
    }
  }
  if (existing !== null) {
    if (existing.meta.sha256 !== sum) throw conflict(file.name, existing.meta.sha256, sum);
    pushedAt = existing.meta.pushedAt;
    storedSize = existing.size;
    bodySha256 = existing.meta.bodySha256;
    // The catalog keeps what the repository holds: an object of older walship carries no scan.
    scanRecord = existing.meta.scan;
    outcome = 'already-archived';
    if (existing.damage !== null) {
      // The archived copy is of this very file (same recorded checksum) but damaged, e.g. a
      // store that exposed an interrupted upload: replace it with a verified one.
      logger.warn('archived copy is damaged; replacing it with this identical file', { file: file.name, damage: existing.damage });
      scanRecord = v.scan ? await packScan(v.scan.result) : undefined;
      const { object, meta } = await build();
      await ctx.storage.replace(key, object, { meta: metaToHeaders(meta), contentType: 'application/zstd' });
      // The next verify reads the new object in depth (an earlier one may have listed the old).
      await ctx.storage
        .replace(`${RECHECK_PREFIX}${file.name}`, Buffer.from(`${new Date().toISOString()}\n`), { contentType: 'text/plain' })
        .catch((err) => logger.warn('could not ask the next verify to read the replaced object again; run walship verify --deep', { file: file.name, error: (err as Error).message }));
      storedSize = bodySize(object);
      bodySha256 = meta.bodySha256;
      outcome = 'repaired';
    }
  }

  // The pusher's push of the next segment may go on (push-order.ts).
  if (opts.inOrder) await markStored(opts.inOrder, file.name);
  await indexFile(ctx, cat, file, v, { sha256: sum, bodySha256, scanRecord, rawSize, storedSize, key, identity, pushedAt });
  if (outcome === 'already-archived') {
    logger.info('already archived with identical content', { file: file.name, sha256: sum.slice(0, 16) });
  } else if (outcome === 'repaired') {
    logger.info('archived (damaged copy replaced)', { file: file.name, raw: rawSize, stored: storedSize });
  } else {
    logger.info('archived', { file: file.name, raw: rawSize, stored: storedSize });
  }
  return { name: file.name, outcome, rawSize, storedSize, sha256: sum };
}

/** The whole file (`size` bytes), read into a buffer of `alloc`'s (in as few reads as the kernel allows). */
async function readWhole(fh: FileHandle, size: number, alloc: (size: number) => Buffer): Promise<Buffer> {
  const buf = alloc(size);
  const got = await readFull(fh, buf, 0);
  return got === size ? buf : buf.subarray(0, got);
}

/**
 * For the pusher, a segment whose predecessor was not archived when its neighbours were looked
 * up: waits for the pusher's push of the predecessor to end, then checks the segment against it.
 * False when the predecessor is not stored (the segment is deferred).
 */
async function afterPredecessor(
  ctx: ArchiveContext,
  cat: Catalog,
  path: string,
  file: WalFileName,
  seg: NonNullable<Validated['segment']>,
  scan: ScanFacts,
  neighbours: Neighbours,
  stateDir: string,
): Promise<boolean> {
  if (seg.segNo === 0) return true;
  if ((await awaitPredecessor(stateDir, dirname(path), segmentName(file.timeline, seg.segNo - 1, seg.segSize))) === 'pending') return false;
  const prev = await loadNeighbour(ctx.storage, cat, file.timeline, seg.segNo - 1, seg.segSize);
  if (prev) checkContinuity(file, scan, { prev, next: neighbours.next });
  return true;
}

/** Indexes the stored file in the catalog, then writes the index blocks it completes (index-blocks.ts). */
async function indexFile(
  ctx: ArchiveContext,
  cat: Catalog,
  file: WalFileName,
  v: Validated,
  o: { sha256: string; bodySha256: string | undefined; scanRecord: string | undefined; rawSize: number; storedSize: number; key: string; pushedAt: string; identity: Awaited<ReturnType<typeof readIdentity>> },
): Promise<void> {
  cat.bindRepository(ctx.repoUrl, o.identity ?? undefined);
  cat.write(`index ${file.name}`, () => {
    indexArchivedFile(cat, {
      file,
      rawSize: o.rawSize,
      storedSize: o.storedSize,
      sha256: o.sha256,
      bodySha256: o.bodySha256 ?? null,
      objectKey: o.key,
      pushedAt: o.pushedAt,
      segment: v.segment,
      scan: v.scan?.result,
      scanRecord: o.scanRecord ?? null,
      raw: v.scan?.raw,
      history: v.history ?? undefined,
      backup: v.backup ?? undefined,
    });
    // Archived at last: no longer a refusal.
    cat.clearRefusal(file.name);
  });
  if (file.kind === 'segment' && v.segment) await writeCompletedBlocks(ctx.storage, cat, file.timeline, v.segment.segNo, v.segment.segSize);
}
