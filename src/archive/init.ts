/**
 * `walship init`: creates the repository root and the catalog; with --pgdata it also binds the
 * repository to that cluster by reading the long header of a segment in its pg_wal.
 */
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { WalshipError, describeSystemError } from '../errors.js';
import { parseWalFileName } from '../wal/names.js';
import { inspectFirstPage } from '../wal/page.js';
import { Catalog } from '../catalog/catalog.js';
import { VERSION } from '../version.js';
import { checkIdentity, describeIdentity, ensureIdentity, readIdentity } from './identity.js';
import type { ArchiveContext } from './context.js';

async function clusterFactsFromPgdata(pgdata: string) {
  const walDir = join(pgdata, 'pg_wal');
  let names: string[];
  try {
    names = await readdir(walDir);
  } catch (err) {
    throw new WalshipError('USAGE', `cannot list ${walDir}: ${describeSystemError(err)} (is --pgdata a data directory?)`);
  }
  const seg = names.map(parseWalFileName).find((f) => f?.kind === 'segment');
  if (!seg) throw new WalshipError('USAGE', `no WAL segment in ${walDir}: is --pgdata an initialized data directory?`);
  const fh = await open(join(walDir, seg.name), 'r');
  try {
    const buf = Buffer.alloc(40);
    await fh.read(buf, 0, 40, 0);
    const h = inspectFirstPage(buf, seg);
    return { systemIdentifier: h.systemIdentifier, pgMajor: h.pgMajor, segSize: h.segSize };
  } finally {
    await fh.close();
  }
}

export async function initRepository(ctx: Omit<ArchiveContext, 'compressLevel'>, pgdata?: string): Promise<string> {
  await ctx.storage.create();
  await ctx.storage.check();
  let identity = await readIdentity(ctx.storage);
  if (pgdata) {
    const facts = await clusterFactsFromPgdata(pgdata);
    if (identity) checkIdentity(identity, facts, `the cluster in ${pgdata}`, ctx.storage.location);
    else identity = await ensureIdentity(ctx.storage, facts, VERSION);
  }
  const cat = Catalog.open(ctx.catalogPath)!;
  try {
    cat.bindRepository(ctx.repoUrl, identity ?? undefined);
  } finally {
    cat.close();
  }
  return identity
    ? `repository ${ctx.storage.location} is ready for the cluster with ${describeIdentity(identity)}; catalog ${ctx.catalogPath}`
    : `repository ${ctx.storage.location} is ready; the first archived segment binds it to its cluster; catalog ${ctx.catalogPath}`;
}
