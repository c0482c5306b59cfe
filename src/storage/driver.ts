/**
 * The one small interface every repository backend implements (filesystem, S3).
 * Keys are relative, '/'-separated paths such as `wal/0000000100000000/000000010000000000000003.zst`.
 * Drivers store bytes and string metadata; they know nothing about WAL.
 *
 * Errors: a driver returns null / 'exists' for the expected cases and throws WalshipError
 * REPOSITORY_UNAVAILABLE (cannot reach or read the store) or REPOSITORY_INVALID (misconfigured,
 * e.g. the root does not exist) for everything else. It never reports a failure as "absent".
 */
export interface ObjectInfo {
  key: string;
  size: number;
  /** Metadata stored beside the object, when the backend keeps it separately (S3). */
  meta?: Record<string, string>;
}

/** A write that never completed (StorageDriver.leftovers). */
export interface Leftover {
  /** The key it would have had, or the temporary file's path relative to the root. */
  key: string;
  size: number;
  /** When it was last written or started, ISO 8601. */
  since: string;
  kind: 'temporary-file' | 'incomplete-upload';
}

export interface ListOptions {
  /** Only keys that sort after this string (S3's StartAfter). */
  startAfter?: string;
}

export interface PutOptions {
  /** Metadata to keep beside the object where the backend supports it (S3 user metadata). */
  meta?: Record<string, string>;
  /** A MIME type, where the backend keeps one. */
  contentType?: string;
}

/**
 * An object's bytes too many to hold in memory (a large WAL file's, compressed into a local
 * file as it was read): its size, and any range of it read afresh (a retried upload reads again).
 */
export interface BodySource {
  readonly size: number;
  /** Bytes [offset, offset+length) of the body (fewer only past its end). */
  read(offset: number, length: number): Promise<Buffer>;
}

/** What a driver stores: the bytes, or a source of them. */
export type Body = Buffer | BodySource;

export function bodySize(body: Body): number {
  return Buffer.isBuffer(body) ? body.length : body.size;
}

/** Bytes [offset, offset+length) of a body. */
export async function bodyRange(body: Body, offset: number, length: number): Promise<Buffer> {
  return Buffer.isBuffer(body) ? body.subarray(offset, offset + length) : body.read(offset, length);
}

/** A body in pieces of at most `chunk` bytes, in order. */
export async function* bodyChunks(body: Body, chunk = STREAM_CHUNK): AsyncGenerator<Buffer, void> {
  if (Buffer.isBuffer(body)) {
    yield body;
    return;
  }
  for (let off = 0; off < body.size; off += chunk) yield await body.read(off, Math.min(chunk, body.size - off));
}

/** Bytes a driver's stream reads at a time (filesystem reads; S3 hands on what the socket gives). */
export const STREAM_CHUNK = 1024 * 1024;

/**
 * A driver's getStream from its reader: an async generator that returns at once when the object
 * is absent, and yields an empty chunk first once it is open. Started here, so that the absence
 * is known and `return()` runs the reader's cleanup.
 */
export async function startedStream(reader: AsyncGenerator<Buffer, void>): Promise<AsyncGenerator<Buffer, void> | null> {
  const first = await reader.next();
  return first.done ? null : reader;
}

export interface StorageDriver {
  /** A printable description of where this driver stores (never includes credentials). */
  readonly location: string;
  /** The whole object, or null when no object has that key. */
  get(key: string): Promise<Buffer | null>;
  /**
   * The object as a stream of chunks in order, or null when no object has that key (known before
   * any chunk is read). The generator is started: `return()` frees its file or connection
   * whether or not a chunk was taken. A read that breaks off midway is resumed where it stopped
   * (S3: a ranged GET of the same object) or the iteration throws REPOSITORY_UNAVAILABLE: it
   * never ends early without an error.
   */
  getStream(key: string): Promise<AsyncGenerator<Buffer, void> | null>;
  /** Bytes [start, start+length) of the object (fewer at its end), or null when absent. */
  getRange(key: string, start: number, length: number): Promise<Buffer | null>;
  /** Size (and separately stored metadata) of the object, or null when absent. */
  head(key: string): Promise<ObjectInfo | null>;
  /**
   * Stores the object durably unless an object already has that key. Returns 'created' only
   * once the data is durable (fsync + rename on a filesystem, a completed PUT on S3). Nothing
   * is ever visible under `key` half-written.
   */
  putIfAbsent(key: string, body: Body, opts?: PutOptions): Promise<'created' | 'exists'>;
  /**
   * Stores the object durably, replacing any object under `key` (atomically: readers see the old
   * or the new object, never a mix). Only for repairing an archived copy that is provably
   * damaged and whose recorded checksum equals the new content's, and for walship's own small
   * documents that are superseded whole (a lock's refresh, verify's state); never for WAL.
   */
  replace(key: string, body: Body, opts?: PutOptions): Promise<void>;
  /**
   * Every object whose key starts with `prefix` (and sorts after `startAfter`), in ascending
   * order of the keys' bytes, as S3 lists them. A consumer that stops early stops the listing:
   * what is not read is not requested.
   */
  list(prefix: string, opts?: ListOptions): AsyncIterable<ObjectInfo>;
  /**
   * The distinct names one level below `dir` (a key prefix ending in '/'), sorted: what S3
   * lists as common prefixes and keys with the delimiter '/', a directory's entries.
   */
  children(dir: string): Promise<string[]>;
  /**
   * Removes the objects (keys that name no object are not an error), durably: once it returns,
   * they are gone for every reader (the directories fsynced on a filesystem; S3 deletes in
   * batches of up to 1000, DeleteObjects). Any key that could not be removed fails the call.
   */
  remove(keys: readonly string[]): Promise<void>;
  /**
   * What a writer left half-done under `prefix`: temporary files of a killed write on a
   * filesystem, incomplete multipart uploads on S3. Never visible as objects; listed for verify.
   */
  leftovers(prefix: string): AsyncIterable<Leftover>;
  /** Requests this driver has made so far (HTTP attempts on S3, operations on a filesystem): for reports and benchmarks. */
  readonly requests: number;
  /** Checks the repository root is usable; throws REPOSITORY_* otherwise. */
  check(): Promise<void>;
  /** Creates the repository root if the backend has such a thing (a directory). */
  create(): Promise<void>;
}
