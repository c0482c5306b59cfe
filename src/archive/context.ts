/**
 * The repository context every archive operation works in (ArchiveContext): the
 * configured repository's canonical URL, its storage driver (opened, and its module loaded, only
 * by openArchiveContext), the catalog path and compression level.
 */
import { requireRepo, type Config } from '../config.js';
import { parseRepoUrl, openStorage } from '../storage/open.js';
import type { StorageDriver } from '../storage/driver.js';
import type { KeptCatalog } from '../catalog/kept.js';
import type { BodyEncoder } from './body-encoder.js';

export interface ArchiveContext {
  storage: StorageDriver;
  /** Canonical repository URL (what the catalog is bound to). */
  repoUrl: string;
  catalogPath: string;
  compressLevel: number;
  /** A catalog connection kept open by a long-lived process (the pusher, the agent); per-file calls open their own. */
  catalog?: KeptCatalog;
  /** Who compresses (default: this thread; the agent's has a thread of its own). */
  encoder?: BodyEncoder;
}

/** The configured repository's canonical URL (what the catalog and read-ahead records name). */
export function repoCanonical(cfg: Config): string {
  return parseRepoUrl(requireRepo(cfg)).canonical;
}

export async function openArchiveContext(cfg: Config): Promise<ArchiveContext> {
  return { storage: await openStorage(requireRepo(cfg), cfg), repoUrl: repoCanonical(cfg), catalogPath: cfg.catalog, compressLevel: cfg.compress_level };
}

/** The context with a catalog connection kept open for a long-lived process (a pusher lane, the agent). */
export async function withCatalog(ctx: Promise<ArchiveContext>): Promise<ArchiveContext> {
  const c = await ctx;
  const { KeptCatalog } = await import('../catalog/kept.js');
  return { ...c, catalog: new KeptCatalog(c.catalogPath) };
}

/** The agent's context: a catalog connection kept open, and its compression thread (body-encoder.ts). */
export async function openAgentContext(cfg: Config, encoder: BodyEncoder): Promise<ArchiveContext> {
  return { ...(await withCatalog(openArchiveContext(cfg))), encoder };
}
