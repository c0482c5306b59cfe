/**
 * A WAL file larger than WHOLE_MAX (segments of 32 MiB up to 1 GiB), read for archive-push in
 * pieces, in memory that does not grow with its size: each piece is validated (wal/page.ts),
 * scanned (SegmentScanner), hashed and compressed into a spill file, which then is the object's
 * body. Nothing of a piece is kept after it; a piece is PIECE bytes.
 *
 * The spill file is in `spill/` beside the catalog (a directory private to this user, checked),
 * named by the atomic-write helper's temporary names (so a killed push's file is known for
 * abandoned and removed by the next), and removed when the push ends. It holds the compressed
 * file only: a fraction of the file's size on this host's disk, for as long as one push lasts.
 * It is read back and checked against the SHA-256 of what was compressed before it is uploaded.
 */
import { open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createHash } from 'node:crypto';
import { WalshipError, describeSystemError } from '../errors.js';
import type { WalFileName } from '../wal/names.js';
import { SegmentValidator } from '../wal/page.js';
import { SegmentScanner } from '../wal/scanner.js';
import { judgeScan, scanOptionsFor } from '../wal/scan-file.js';
import { isAbandonedTemp, tempPathFor } from '../local/atomic-write.js';
import { privateDir } from '../local/private.js';
import { readFull } from '../local/read-full.js';
import type { BodySource } from '../storage/driver.js';
import { StreamCompressor, type EncodedBody } from './envelope.js';
import type { Validated } from './validate.js';

/** Files up to this size are read whole (a 16 MiB segment in one read); larger ones in pieces. */
export const WHOLE_MAX = 16 * 1024 * 1024;
/** Bytes read, scanned and compressed at a time. */
export const PIECE = 4 * 1024 * 1024;

/** A file read in pieces: its checksum, what validating and scanning it said, its compressed body (in the spill file). */
export interface ReadFile {
  sum: string;
  v: Validated;
  body: EncodedBody;
  /** Removes the spill file. */
  close(): Promise<void>;
}

/** The spill directory for a catalog at `catalogPath`. */
export function spillDirFor(catalogPath: string): string {
  return join(dirname(catalogPath), 'spill');
}

/**
 * Reads the segment or .partial open at `fh` (`size` bytes) in pieces. Throws INVALID_WAL as
 * validateFile and scanArchivedFile would for the whole file, FILE_UNREADABLE when it cannot be
 * read (or changes size while read), CATALOG_ERROR or NO_SPACE when the spill file cannot be written.
 */
export async function readInPieces(fh: FileHandle, size: number, file: WalFileName, path: string, spillDir: string, level: number): Promise<ReadFile> {
  const piece = Buffer.allocUnsafeSlow(PIECE);
  const readAt = async (off: number): Promise<Buffer> => {
    const want = Math.min(PIECE, size - off);
    let got: number;
    try {
      got = await readFull(fh, piece.subarray(0, want), off);
    } catch (err) {
      throw new WalshipError('FILE_UNREADABLE', `cannot read ${path}: ${describeSystemError(err)}`);
    }
    if (got < want) throw new WalshipError('FILE_UNREADABLE', `${path} became shorter while it was read (${off + got} bytes, ${size} before)`);
    return piece.subarray(0, want);
  };

  const first = await readAt(0);
  const validator = new SegmentValidator(first, file, size);
  const scanner = new SegmentScanner(scanOptionsFor(file, validator.info()));
  const hash = createHash('sha256');
  const spill = await openSpill(spillDir);
  try {
    let pending: Buffer[] = [];
    const compressor = await StreamCompressor.start(level, size, (chunk) => pending.push(chunk));
    let spilled = 0;
    const flush = async () => {
      const chunks = pending;
      pending = [];
      for (const c of chunks) spilled += await spill.write(c, spilled);
    };
    for (let off = 0, p = first; ; ) {
      validator.pages(p, off);
      const last = off + p.length >= size;
      scanner.push(p, last);
      hash.update(p);
      compressor.write(p);
      await flush();
      if (last) break;
      off += p.length;
      p = await readAt(off);
    }
    const { size: bodySize, bodySha256 } = compressor.end();
    await flush();
    if (spilled !== bodySize) throw new Error(`the spill file holds ${spilled} bytes of ${bodySize}`);
    const result = judgeScan(scanner.result(), file);
    // What is uploaded is read back from this host's disk: it must be what was compressed.
    const body = spill.source(bodySize);
    const again = createHash('sha256');
    for (let off = 0; off < bodySize; off += PIECE) again.update(await body.read(off, Math.min(PIECE, bodySize - off)));
    if (again.digest('hex') !== bodySha256) throw new WalshipError('CATALOG_ERROR', `the compressed copy of ${file.name} in ${spillDir} is not what was written to it: check that disk`);
    return { sum: hash.digest('hex'), v: { segment: validator.info(), scan: { result } }, body: { body, bodySha256 }, close: spill.close };
  } catch (err) {
    await spill.close();
    throw err;
  }
}

interface Spill {
  /** Writes `chunk` at `offset`; the bytes written. */
  write(chunk: Buffer, offset: number): Promise<number>;
  /** The file's first `size` bytes as a body source. */
  source(size: number): BodySource;
  close(): Promise<void>;
}

async function openSpill(dir: string): Promise<Spill> {
  const trust = privateDir(dir, { create: true });
  if (trust.state !== 'ok') {
    const why = trust.state === 'untrusted' || trust.state === 'uncreatable' ? trust.reason : 'it is absent';
    throw new WalshipError('CATALOG_ERROR', `cannot use ${dir} for a large WAL file's compressed copy: ${why}`);
  }
  await removeAbandoned(dir);
  const path = tempPathFor(join(dir, 'push'));
  let fh: FileHandle;
  try {
    fh = await open(path, 'wx+', 0o600);
  } catch (err) {
    throw spillError(dir, err);
  }
  let closed = false;
  return {
    async write(chunk, offset) {
      try {
        let done = 0;
        while (done < chunk.length) done += (await fh.write(chunk, done, chunk.length - done, offset + done)).bytesWritten;
        return done;
      } catch (err) {
        throw spillError(dir, err);
      }
    },
    source: (size) => ({
      size,
      async read(offset, length) {
        const buf = Buffer.allocUnsafe(Math.max(0, Math.min(length, size - offset)));
        if ((await readFull(fh, buf, offset)) < buf.length) throw new WalshipError('CATALOG_ERROR', `${path} is shorter than walship wrote it`);
        return buf;
      },
    }),
    async close() {
      if (closed) return;
      closed = true;
      await fh.close().catch(() => undefined);
      await rm(path, { force: true });
    },
  };
}

function spillError(dir: string, err: unknown): WalshipError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new WalshipError('NO_SPACE', `no space left in ${dir} for a large WAL file's compressed copy: free space on that disk`);
  return new WalshipError('CATALOG_ERROR', `cannot write a large WAL file's compressed copy in ${dir}: ${describeSystemError(err)}`);
}

/** Spill files of pushes killed before they removed theirs. */
async function removeAbandoned(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (isAbandonedTemp(name)) await rm(join(dir, name), { force: true }).catch(() => undefined);
  }
}
