/**
 * Deliberate gaps: segments archive-push acknowledged without archiving them (push_queue_max,
 * queue-guard.ts). Each drop is written first to this host's private pending directory beside
 * the catalog (`<catalog>.gaps/<segment>.json`, durably, before PostgreSQL is told 0) and into
 * the catalog; the next push that reaches the repository stores the record there as
 * `gaps/<segment>.json` (created once) and removes the pending file, and every catalog's sync
 * reads `gaps/`, so that ranges, plan and status on every host name the hole for what it is.
 */
import { promises as fsp, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { StorageDriver } from '../storage/driver.js';
import type { Catalog, DroppedSegment } from '../catalog/catalog.js';
import { syncDir, writeFileAtomic } from '../local/atomic-write.js';
import { privateDir, readPrivateFile } from '../local/private.js';
import { logger } from '../log.js';

export const GAPS_PREFIX = 'gaps/';

export interface GapRecord extends DroppedSegment {
  format: 1;
  /** WAL waiting in pg_wal when it was dropped, and the limit it was over (bytes). */
  backlogBytes: number;
  queueMax: number;
}

export function pendingGapsDir(catalogPath: string): string {
  return `${catalogPath}.gaps`;
}

function parseGap(text: string): GapRecord | null {
  try {
    const r = JSON.parse(text) as GapRecord;
    return r.format === 1 && typeof r.name === 'string' && Number.isSafeInteger(r.segNo) && Number.isSafeInteger(r.timeline) && typeof r.droppedAt === 'string' ? r : null;
  } catch {
    return null;
  }
}

/** Writes the drop durably to the pending directory; false when that directory cannot be trusted or written. */
export async function writePendingGap(catalogPath: string, rec: GapRecord): Promise<boolean> {
  const dir = pendingGapsDir(catalogPath);
  if (privateDir(dir, { create: true }).state !== 'ok') return false;
  try {
    await writeFileAtomic(join(dir, `${rec.name}.json`), JSON.stringify(rec, null, 2) + '\n', { durable: true });
    return true;
  } catch {
    return false;
  }
}

/**
 * Stores this host's pending gap records in the repository and forgets them locally (the directory
 * too, once empty). Cheap when there are none (one existence check); never fails: what is not stored now is stored by a later push.
 */
export async function sendPendingGaps(storage: StorageDriver, catalogPath: string): Promise<void> {
  const dir = pendingGapsDir(catalogPath);
  if (!existsSync(dir) || privateDir(dir).state !== 'ok') return;
  try {
    for (const n of await fsp.readdir(dir)) {
      if (!n.endsWith('.json') || n.startsWith('.')) continue;
      const text = readPrivateFile(join(dir, n));
      const rec = text === null ? null : parseGap(text);
      if (rec === null) continue;
      await storage.putIfAbsent(`${GAPS_PREFIX}${rec.name}.json`, Buffer.from(JSON.stringify(rec, null, 2) + '\n'), { contentType: 'application/json' });
      await fsp.rm(join(dir, n), { force: true });
      await syncDir(dir);
      logger.info('stored the record of a segment push_queue_max dropped', { name: rec.name });
    }
    // Empty: gone, so that pushes check one path again (a drop being written meanwhile keeps it: ENOTEMPTY).
    await fsp.rmdir(dir).catch(() => undefined);
  } catch (err) {
    logger.debug('pending gap records not stored yet', { error: (err as Error).message });
  }
}

/** The gap records in the repository. */
export async function readGaps(storage: StorageDriver): Promise<GapRecord[]> {
  const out: GapRecord[] = [];
  for await (const o of storage.list(GAPS_PREFIX)) {
    if (!o.key.endsWith('.json')) continue;
    const buf = await storage.get(o.key);
    const rec = buf === null ? null : parseGap(buf.toString('utf8'));
    if (rec) out.push(rec);
  }
  return out;
}

/** Adds the gap records to the catalog (call inside write()). */
export function applyGaps(cat: Catalog, gaps: readonly GapRecord[]): void {
  cat.noteDropped(gaps.map(({ name, timeline, segNo, droppedAt, reason, host }) => ({ name, timeline, segNo, droppedAt, reason, host })));
}
