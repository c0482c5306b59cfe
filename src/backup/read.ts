/**
 * Reading a stored walship backup back (restore, verify): its summary and manifest, each chunk's
 * tar entries, and the check of each entry against the manifest piece it is.
 */
import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { WalshipError } from '../errors.js';
import { EnvelopeError, decompressPieces } from '../archive/envelope.js';
import type { StorageDriver } from '../storage/driver.js';
import { backupKey, type BackupSummary, type Manifest, type ManifestFile, type ManifestPiece } from './format.js';

export async function readBackup(storage: StorageDriver, id: string): Promise<{ summary: BackupSummary; manifest: Manifest }> {
  const [s, m] = await Promise.all([storage.get(backupKey(id, 'backup.json')), storage.get(backupKey(id, 'manifest.json'))]);
  if (s === null) {
    throw new WalshipError('TARGET_UNREACHABLE', `backup ${id} is not complete in repository ${storage.location} (no backup.json): choose another backup`);
  }
  if (m === null) throw new WalshipError('OBJECT_LOST', `backup ${id} has no manifest.json in repository ${storage.location}`);
  try {
    return { summary: JSON.parse(s.toString('utf8')) as BackupSummary, manifest: JSON.parse(m.toString('utf8')) as Manifest };
  } catch {
    throw new WalshipError('OBJECT_CORRUPT', `backup ${id}: backup.json or manifest.json is not valid JSON`);
  }
}

export interface PieceRef {
  file: ManifestFile;
  piece: ManifestPiece;
}

/** Which manifest piece each tar entry of each chunk is, keyed by pieceKey. */
export function piecesOf(manifest: Manifest): Map<string, PieceRef> {
  const pieces = new Map<string, PieceRef>();
  for (const f of manifest.files) for (const p of f.pieces) pieces.set(pieceKey(p.chunk, p.entry), { file: f, piece: p });
  return pieces;
}

export const pieceKey = (chunk: string, entry: string): string => `${chunk}\0${entry}`;

/** The pieces (piecesOf) grouped by the chunk that holds them, every chunk of `chunks` present. */
export function piecesByChunk(pieces: ReadonlyMap<string, PieceRef>, chunks: readonly string[]): Map<string, Map<string, PieceRef>> {
  const byChunk = new Map<string, Map<string, PieceRef>>(chunks.map((c) => [c, new Map()]));
  for (const [k, ref] of pieces) byChunk.get(ref.piece.chunk)?.set(k, ref);
  return byChunk;
}

/** Throws OBJECT_CORRUPT unless `data` is the piece the manifest says (length and SHA-256). */
export function checkPiece(id: string, chunk: string, hit: PieceRef, data: Buffer, then: string): void {
  const sum = createHash('sha256').update(data).digest('hex');
  if (sum !== hit.piece.sha256 || data.length !== hit.piece.length) {
    throw new WalshipError(
      'OBJECT_CORRUPT',
      `backup ${id}: ${hit.file.path} (bytes ${hit.piece.offset}-${hit.piece.offset + hit.piece.length} in ${chunk}) does not match the manifest checksum; ${then}`,
    );
  }
}

/** Reads chunk `chunk` of backup `id` and hands each tar entry to `onEntry`, in order; returns its stored and decompressed sizes. */
export async function readChunk(
  storage: StorageDriver,
  id: string,
  chunk: string,
  onEntry: (entry: string, data: Buffer) => Promise<void>,
): Promise<{ stored: number; raw: number }> {
  const body = await fetchChunk(storage, id, chunk);
  return { stored: body.length, raw: await entriesOf(id, chunk, body, onEntry) };
}

/** The stored (compressed) chunk; OBJECT_LOST when it is not there. */
export async function fetchChunk(storage: StorageDriver, id: string, chunk: string): Promise<Buffer> {
  const body = await storage.get(backupKey(id, chunk));
  if (body === null) throw new WalshipError('OBJECT_LOST', `backup ${id} lacks ${chunk} in repository ${storage.location}`);
  return body;
}

/**
 * Decompresses a stored chunk and hands each tar entry to `onEntry`, in order, each in a buffer
 * that owns its memory; returns the decompressed size. CPU work only. The tar is decompressed
 * in pieces as it is read: a chunk holds its stored bytes and the entry being read.
 */
export async function entriesOf(id: string, chunk: string, body: Buffer, onEntry: (entry: string, data: Buffer) => Promise<void>): Promise<number> {
  const tar = await import('tar-stream');
  const extract = tar.extract();
  const corrupt = (why: string) => new WalshipError('OBJECT_CORRUPT', `backup ${id}: ${chunk} is damaged (${why})`);
  const done = new Promise<void>((resolveP, reject) => {
    extract.on('entry', (header, stream, next) => {
      // Each entry in memory of its own (never Buffer's shared pool), so that it can be handed to another thread.
      const data = Buffer.allocUnsafeSlow(header.size ?? 0);
      let at = 0;
      stream.on('data', (d: unknown) => {
        at += (d as Buffer).copy(data, at);
      });
      stream.on('end', () => {
        onEntry(header.name, at === data.length ? data : data.subarray(0, at)).then(() => next(), reject);
      });
      stream.on('error', reject);
    });
    extract.on('finish', resolveP);
    extract.on('error', (e: Error) => reject(new WalshipError('OBJECT_CORRUPT', `backup ${id}: ${chunk} is not a valid tar (${e.message})`)));
  });
  done.catch(() => undefined);
  let tarBytes = 0;
  try {
    for await (const piece of decompressPieces(body)) {
      tarBytes += piece.length;
      if (!extract.write(piece)) await Promise.race([new Promise<void>((r) => extract.once('drain', () => r())), done]);
    }
  } catch (err) {
    extract.destroy();
    if (err instanceof EnvelopeError) throw corrupt(err.message);
    throw err;
  }
  (extract as unknown as Writable).end();
  await done;
  return tarBytes;
}
