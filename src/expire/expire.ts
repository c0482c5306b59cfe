/**
 * `walship expire`: carries out the plan of plan.ts against the repository.
 *
 * Order (the repository is consistent at every step, and the kept windows are never touched):
 *   1. take the repository's expire lock (lock.ts); sync the catalog; plan
 *   2. store the record of what goes (record.ts); the catalog forgets it (catalog/expirations.ts)
 *   3. backups: every backup.json first (a backup without it is not restorable), then their other
 *      objects, started.json last
 *   4. index blocks wholly below the WAL cut, then the WAL below it, oldest first per timeline,
 *      in batches of 1000 (S3 DeleteObjects), 4 at once
 *   5. release the lock
 * A killed expire leaves its record: every host's catalog has forgotten what it set out to remove,
 * and the next expire removes what is left of it (everything any record removed goes again).
 */
import { Catalog } from '../catalog/catalog.js';
import { applyExpiry, expiredOf, type Expired } from '../catalog/expirations.js';
import { loadPlannerInput } from '../recovery/catalog-input.js';
import type { StorageDriver } from '../storage/driver.js';
import { WAL_PREFIX, objectKeyFor } from '../archive/keys.js';
import { INDEX_PREFIX, parseBlockKey } from '../archive/index-blocks.js';
import { listedFile, segNoOf } from '../archive/repo-reader.js';
import { BACKUP_PREFIX, backupKey } from '../backup/format.js';
import { msToMicros } from '../time.js';
import { parseWalFileName, segNoFromLogSeg } from '../wal/names.js';
import { logger } from '../log.js';
import { runPool } from '../pool.js';
import { WalshipError } from '../errors.js';
import { syncCatalog, type RepoContext } from '../sync/sync.js';
import { acquireLock } from './lock.js';
import { planExpire, type BackupEntry, type ExpirePlan, type RetentionPolicy } from './plan.js';
import { newExpiry, storeExpiry } from './record.js';

/** Keys removed per request, and requests at once. */
const REMOVE_BATCH = 1000;
const BATCHES_IN_FLIGHT = 4;

export interface WalRemoval {
  timeline: number;
  kind: string;
  count: number;
  bytes: number;
  first: string;
  last: string;
}

export interface ExpireReport {
  dryRun: boolean;
  plan: ExpirePlan;
  /** The WAL that goes, per timeline and kind (from the catalog). */
  wal: WalRemoval[];
  /** Bytes of the backups that go (as the catalog knows them). */
  backupBytes: number;
  /**
   * What was removed (absent on a dry run): objects, in `seconds` and `requests`, after the
   * record was stored and the catalog had forgotten them (`recordSeconds`).
   */
  removed?: { objects: number; seconds: number; recordSeconds: number; requests: number; record: string };
}

export interface ExpireOptions {
  policy: RetentionPolicy;
  dryRun: boolean;
  nowMs?: number;
}

function backupEntries(cat: Catalog): BackupEntry[] {
  return cat.backups().map((b) => ({
    name: b.name,
    source: b.source,
    status: b.status,
    label: b.label,
    startLsn: b.start_lsn,
    stopLsn: b.stop_lsn,
    startTime: b.start_time,
    stopTime: b.stop_time,
  }));
}

function walRemovals(cat: Catalog, below: number | null, files: readonly string[]): WalRemoval[] {
  const rows: WalRemoval[] =
    below === null
      ? []
      : (cat.db
          .prepare(
            `SELECT timeline, kind, count(*) AS count, sum(stored_size) AS bytes, min(name) AS first, max(name) AS last
               FROM wal_files WHERE kind <> 'history' AND seg_no < ? GROUP BY timeline, kind ORDER BY timeline, kind`,
          )
          .all(below) as WalRemoval[]);
  const one = cat.db.prepare('SELECT timeline, kind, stored_size FROM wal_files WHERE name = ?');
  for (const f of files) {
    const r = one.get(f) as { timeline: number; kind: string; stored_size: number } | undefined;
    if (r) rows.push({ timeline: r.timeline, kind: r.kind, count: 1, bytes: r.stored_size, first: f, last: f });
  }
  return rows;
}

export async function runExpire(ctx: RepoContext, opts: ExpireOptions): Promise<ExpireReport> {
  const lock = opts.dryRun ? null : await acquireLock(ctx.storage, 'expire', 'walship expire');
  try {
    await syncCatalog(ctx);
    const now = opts.nowMs ?? Date.now();
    const { plan, wal, backupBytes, segSize } = Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) => {
      const plan = planExpire(loadPlannerInput(cat), backupEntries(cat), opts.policy, msToMicros(now));
      const size = new Map(cat.backups().map((b) => [b.name, b.stored_size ?? 0]));
      return {
        plan,
        wal: walRemovals(cat, plan.walBelowSeg, plan.removedFiles),
        backupBytes: plan.removed.reduce((n, b) => n + (size.get(b.name) ?? 0), 0),
        segSize: cat.repository()?.wal_segment_size ?? 16 * 1024 * 1024,
      };
    });
    const report: ExpireReport = { dryRun: opts.dryRun, plan, wal, backupBytes };
    if (opts.dryRun) return report;

    const t0 = Date.now();
    const expiry = newExpiry(new Date(), { walBelowSeg: plan.walBelowSeg, backups: plan.removed.map((b) => b.name), files: plan.removedFiles });
    const nothing = expiry.walBelowSeg === null && expiry.backups.length === 0 && expiry.files.length === 0;
    if (!nothing) {
      await storeExpiry(ctx.storage, expiry);
      Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) => cat.write('record the expire', () => applyExpiry(cat, expiry)));
    }
    const recorded = Date.now();
    const req0 = ctx.storage.requests;
    // What this and every earlier expire removed (the records the catalog has applied): whatever of it is still there goes now.
    const all = Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) => expiredOf(cat));
    let objects = 0;
    const remove = async (keys: string[]) => {
      if (lock?.lost) throw new WalshipError('REPOSITORY_BUSY', 'the expire lock was taken over by another process (this one was not refreshing it): stopped; the next expire finishes the rest');
      const batches: string[][] = [];
      for (let i = 0; i < keys.length; i += REMOVE_BATCH) batches.push(keys.slice(i, i + REMOVE_BATCH));
      await runPool(batches, BATCHES_IN_FLIGHT, async (b) => {
        await ctx.storage.remove(b);
        objects += b.length;
      });
    };
    await removeBackups(ctx.storage, all.backups, remove);
    await removeWal(ctx.storage, all, segSize, remove);
    report.removed = {
      objects,
      recordSeconds: (recorded - t0) / 1000,
      seconds: (Date.now() - recorded) / 1000,
      requests: ctx.storage.requests - req0,
      record: nothing ? '' : expiry.key,
    };
    logger.info('expire done', { objects, seconds: report.removed.seconds });
    return report;
  } finally {
    await lock?.release();
  }
}

/** Removes the backups' objects: every backup.json first, then the rest, started.json last. */
async function removeBackups(storage: StorageDriver, ids: ReadonlySet<string>, remove: (keys: string[]) => Promise<void>): Promise<void> {
  const present = (await storage.children(BACKUP_PREFIX)).filter((id) => ids.has(id));
  const contents = new Map<string, string[]>();
  for (const id of present) contents.set(id, await storage.children(`${BACKUP_PREFIX}${id}/`));
  const pick = (fn: (name: string) => boolean) => present.flatMap((id) => contents.get(id)!.filter(fn).map((n) => backupKey(id, n)));
  await remove(pick((n) => n === 'backup.json'));
  await remove(pick((n) => n !== 'backup.json' && n !== 'started.json'));
  await remove(pick((n) => n === 'started.json'));
}

/**
 * Removes the WAL below the cut (and the named files): index blocks wholly below it first (a
 * reader then reads the segments' own metadata, which are still there), then each timeline's
 * WAL oldest first, listed only up to the cut.
 */
async function removeWal(storage: StorageDriver, x: Expired, segSize: number, remove: (keys: string[]) => Promise<void>): Promise<void> {
  const named = [...x.files].map((f) => parseWalFileName(f)).filter((f) => f !== null).map((f) => objectKeyFor(f!));
  await remove(named);
  const below = x.walBelowSeg;
  if (below === null) return;
  const blocks: string[] = [];
  for await (const o of storage.list(INDEX_PREFIX)) {
    const ref = parseBlockKey(o.key, segSize);
    if (ref && ref.firstSeg + ref.count <= below) blocks.push(o.key);
  }
  await remove(blocks);
  // The timelines with a directory below the cut; each listed in key order (segment order) up to
  // the cut, and removed in full batches as the listing goes.
  const timelines = new Set(
    (await storage.children(WAL_PREFIX)).filter((d) => /^[0-9A-F]{16}$/.test(d) && segNoFromLogSeg(`${d.slice(8)}00000000`, segSize) < below).map((d) => d.slice(0, 8)),
  );
  let keys: string[] = [];
  for (const tl of timelines) {
    for await (const o of storage.list(`${WAL_PREFIX}${tl}`)) {
      const l = listedFile(o.key, o.size);
      if (!l || l.file.kind === 'history') continue;
      if (segNoOf(l.file, segSize) >= below) break;
      keys.push(o.key);
      if (keys.length >= REMOVE_BATCH * BATCHES_IN_FLIGHT) {
        await remove(keys);
        keys = [];
      }
    }
  }
  await remove(keys);
}
