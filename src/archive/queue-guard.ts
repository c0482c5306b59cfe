/**
 * The pg_wal guard (push_queue_max, off by default). When the repository is down for hours,
 * pg_wal fills and the primary stops. With push_queue_max set, an archive-push of a segment that
 * fails because the repository cannot be reached or written, while more WAL than that waits in
 * pg_wal (`.ready` segments), acknowledges the segment without archiving it: PostgreSQL may then
 * recycle it. The drop is a deliberate, recorded gap (gaps.ts): written durably before the call
 * returns 0, or the call fails as it would have. Refusals of the file itself (another cluster's
 * WAL, a diverged history, a damaged file) are never dropped: they are not an unreachable archive.
 */
import { readdirSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Config } from '../config.js';
import { asWalshipError, type ErrorCode } from '../errors.js';
import { logger } from '../log.js';
import { parseWalFileName, segNoFromLogSeg } from '../wal/names.js';
import { writePendingGap, type GapRecord } from './gaps.js';

const UNREACHABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['REPOSITORY_UNAVAILABLE', 'REPOSITORY_INVALID', 'DEST_UNWRITABLE']);
const READY_SEGMENT = /^[0-9A-F]{24}\.ready$/;

/** Bytes of WAL waiting to be archived in `walDir`: its `.ready` segments times the segment size. */
export function backlogBytes(walDir: string, segSize: number): number {
  try {
    return readdirSync(join(walDir, 'archive_status')).filter((n) => READY_SEGMENT.test(n)).length * segSize;
  } catch {
    return 0;
  }
}

/**
 * Called with the error a push of `path` failed with: returns (the call then exits 0) only when
 * the guard dropped the segment and recorded it; otherwise throws `err` unchanged.
 */
export async function dropIfQueueFull(cfg: Config, path: string, err: unknown): Promise<void> {
  const max = cfg.push_queue_max;
  const we = asWalshipError(err);
  const file = parseWalFileName(basename(path));
  if (max === undefined || !UNREACHABLE.has(we.code) || file?.kind !== 'segment') throw err;
  let segSize: number;
  try {
    segSize = statSync(path).size;
  } catch {
    throw err;
  }
  const backlog = backlogBytes(dirname(path), segSize);
  if (backlog <= max) throw err;
  const rec: GapRecord = {
    format: 1,
    name: file.name,
    timeline: file.timeline,
    segNo: segNoFromLogSeg(file.logSeg!, segSize),
    droppedAt: new Date().toISOString(),
    reason: we.message,
    host: hostname(),
    backlogBytes: backlog,
    queueMax: max,
  };
  if (!(await writePendingGap(cfg.catalog, rec))) throw err;
  try {
    const { Catalog } = await import('../catalog/catalog.js');
    const cat = Catalog.open(cfg.catalog);
    if (cat) {
      try {
        cat.write(`record the drop of ${file.name}`, () => cat.noteDropped([rec]));
      } finally {
        cat.close();
      }
    }
  } catch {
    /* the pending record is durable; a sync adds it once it is in the repository */
  }
  logger.error(`push_queue_max: ${file.name} acknowledged WITHOUT being archived: ${Math.round(backlog / 1048576)} MiB of WAL wait in pg_wal, more than push_queue_max; the archive now has a gap there (take a new backup once archiving works)`, {
    code: we.code,
    cause: we.message,
  });
}
