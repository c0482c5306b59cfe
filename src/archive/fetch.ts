/**
 * archive-fetch: find, verify, decompress, deliver.
 *
 * "Not in the archive" (NOT_IN_ARCHIVE, exit 1) is reported only when the repository answered
 * that the object does not exist AND the repository is a real walship repository AND the
 * catalog (if any) does not claim the file was archived. Everything else is a hard failure.
 */
import { resolve } from 'node:path';
import { writeFileAtomic } from '../local/atomic-write.js';
import { WalshipError, asWalshipError, describeSystemError } from '../errors.js';
import { parseWalFileName } from '../wal/names.js';
import { readLongPageHeader } from '../wal/page.js';
import { Catalog } from '../catalog/catalog.js';
import { logger } from '../log.js';
import { describeIdentity, readIdentity } from './identity.js';
import { decodeObjectStream, EnvelopeError, type Recorded } from './envelope.js';
import { objectKeyFor } from './keys.js';
import type { ArchiveContext } from './context.js';

export interface FetchResult {
  name: string;
  dest: string;
  rawSize: number;
  /** SHA-256 of the delivered bytes (verified against the object's metadata and the catalog). */
  sha256: string;
}

export async function fetchFile(ctx: Omit<ArchiveContext, 'compressLevel'>, name: string, dest: string): Promise<FetchResult> {
  const file = parseWalFileName(name);
  if (!file) {
    throw new WalshipError('USAGE', `"${name}" is not a WAL file name (a segment, .partial, .history or .backup file)`);
  }
  const key = objectKeyFor(file);

  const recorded = catalogRecord(ctx, name);

  const [obj, identity] = await Promise.all([ctx.storage.getStream(key), readIdentity(ctx.storage)]);
  try {
    if (identity === null) {
      throw new WalshipError(
        'REPOSITORY_INVALID',
        `repository ${ctx.storage.location} has no walship identity: wrong --repo, or nothing was ever archived there`,
      );
    }
    if (obj === null) {
      if (recorded !== undefined) {
        throw new WalshipError(
          'OBJECT_LOST',
          `${name} is recorded in catalog ${ctx.catalogPath} as archived, but ${key} is missing from repository ${ctx.storage.location}`,
        );
      }
      throw new WalshipError('NOT_IN_ARCHIVE', `${name} is not in the archive`);
    }
    const damaged = (err: unknown) =>
      err instanceof EnvelopeError ? new WalshipError('OBJECT_CORRUPT', `archived ${name} (${ctx.storage.location}/${key}) is damaged: ${err.message}`) : err;
    let decoded;
    try {
      // Each piece is written before the next is asked for (deliver): one buffer serves them all.
      decoded = await decodeObjectStream(obj, recorded, { reuse: true });
      if (decoded.meta.name !== name) throw new EnvelopeError(`it holds ${decoded.meta.name}`);
    } catch (err) {
      throw damaged(err);
    }
    const { meta, raw } = decoded;
    // The content as it is decompressed: a segment's first page names its cluster, checked before
    // anything else is written; the object's last checks end the stream, before DEST takes the file.
    const checked = async function* (): AsyncGenerator<Buffer, void> {
      let first = true;
      try {
        for await (const chunk of raw) {
          if (first && (file.kind === 'segment' || file.kind === 'partial') && chunk.length >= 40) {
            const h = readLongPageHeader(chunk);
            if (h.systemIdentifier !== identity.systemIdentifier) {
              throw new WalshipError(
                'WRONG_CLUSTER',
                `archived ${name} is from the cluster with system identifier ${h.systemIdentifier}, but repository ${ctx.storage.location} belongs to ${describeIdentity(identity)}`,
              );
            }
          }
          first = false;
          yield chunk;
        }
      } catch (err) {
        throw damaged(err);
      }
    };
    const target = resolve(dest);
    await deliver(target, checked());
    logger.debug('delivered', { file: name, dest, bytes: meta.rawSize });
    return { name, dest: target, rawSize: meta.rawSize, sha256: meta.sha256 };
  } finally {
    await obj?.return();
  }
}

/**
 * What the catalog recorded for `name`, if there is a catalog. The catalog is an extra check
 * here, not a source: one this process cannot open (a restored server running as another user,
 * say) is skipped with a warning, since the object carries its own checksum. One that indexes
 * another repository is a misconfiguration and stops the fetch.
 */
function catalogRecord(ctx: { catalogPath: string; repoUrl: string }, name: string): Recorded | undefined {
  let cat: Catalog | null;
  try {
    cat = Catalog.open(ctx.catalogPath, { readonly: true });
  } catch (err) {
    logger.warn('catalog not usable; verifying against the object\'s own checksum only', { catalog: ctx.catalogPath, cause: asWalshipError(err).message });
    return undefined;
  }
  try {
    cat?.checkRepository(ctx.repoUrl);
    const row = cat?.walFile(name);
    // A catalog of an older schema (opened read-only, so not migrated) has no body_sha256.
    return row ? { sha256: row.sha256, bodySha256: row.body_sha256 ?? null } : undefined;
  } finally {
    cat?.close();
  }
}

/**
 * Writes a delivered file (local/atomic-write.ts), whole or as its chunks arrive; DEST_UNWRITABLE
 * when it cannot. An error of the chunks' source (a damaged object, the repository) is passed on
 * as it is, and nothing takes the name.
 */
export async function deliver(target: string, data: Buffer | AsyncIterable<Buffer>): Promise<void> {
  let sourceError: { err: unknown } | null = null;
  const source =
    data instanceof Uint8Array
      ? data
      : (async function* () {
          try {
            yield* data;
          } catch (err) {
            sourceError = { err };
            throw err;
          }
        })();
  try {
    await writeFileAtomic(target, source);
  } catch (err) {
    if (sourceError !== null) throw (sourceError as { err: unknown }).err;
    throw new WalshipError('DEST_UNWRITABLE', `cannot write ${target}: ${describeSystemError(err)}`);
  }
}
