/**
 * The repository never holds two histories on one timeline. Before archive-push stores a segment
 * (or .partial) it checks that the file continues the segment archived before it on its timeline
 * and that the segment archived after it (pushes land out of order) continues the file
 * (wal/continuity.ts). A neighbour's ends come from the catalog when it knows the neighbour (this
 * host pushed or synced it), else from the neighbour's object in the repository (its metadata
 * carries its scan), so a neighbour another host archived counts too. A file with no archived
 * neighbour (the first of a timeline, or across a gap) is not checked against anything; the
 * check runs once both are there, from whichever side arrives second.
 *
 * Two writers cannot race each other past the check: segments are stored in order (PostgreSQL's
 * archiver asks in order, and the background pusher stores a segment only once its own push of
 * the predecessor has stored it, push-order.ts), so each writer must first store its own
 * predecessor, and of two writers of one name only one stores it (create-only; on an S3 store
 * that ignores If-None-Match, two PUTs of one name can both complete, storage/s3.ts).
 */
import type { StorageDriver } from '../storage/driver.js';
import type { Catalog } from '../catalog/catalog.js';
import { WalshipError, asWalshipError } from '../errors.js';
import { logger } from '../log.js';
import { formatLsn, segmentName, type WalFileName } from '../wal/names.js';
import { discontinuity, type SegmentEnds } from '../wal/continuity.js';
import type { HeadCont, TailCont } from '../wal/scanner.js';
import type { ScanFacts } from '../wal/scan-record.js';
import { objectKeyFor } from './keys.js';
import { EnvelopeError, unpackScan } from './envelope.js';
import { readFrame } from './repo-reader.js';

export interface Neighbours {
  prev: { name: string; ends: SegmentEnds } | null;
  next: { name: string; ends: SegmentEnds } | null;
}

/** What continuity needs of a scan. */
export function endsOf(scan: ScanFacts): SegmentEnds {
  return { startLsn: scan.startLsn, firstRecordPrev: scan.firstRecordPrev, lastRecordLsn: scan.lastRecordLsn, headCont: scan.headCont, tailCont: scan.tailCont };
}

/** The archived segment `segNo` of `timeline`: its ends, or null when it is not archived (or carries no scan). */
export async function loadNeighbour(storage: StorageDriver, cat: Catalog, timeline: number, segNo: number, segSize: number): Promise<{ name: string; ends: SegmentEnds } | null> {
  if (segNo < 0) return null;
  const name = segmentName(timeline, segNo, segSize);
  const row = cat
    .statement('SELECT start_lsn, first_record_prev, last_record_lsn, head_cont, tail_cont FROM wal_scans WHERE file = ?')
    .get(name) as { start_lsn: number; first_record_prev: number | null; last_record_lsn: number | null; head_cont: string | null; tail_cont: string | null } | undefined;
  if (row) {
    return {
      name,
      ends: {
        startLsn: row.start_lsn,
        firstRecordPrev: row.first_record_prev,
        lastRecordLsn: row.last_record_lsn,
        headCont: row.head_cont === null ? null : (JSON.parse(row.head_cont) as HeadCont),
        tailCont: row.tail_cont === null ? null : (JSON.parse(row.tail_cont) as TailCont),
      },
    };
  }
  const key = objectKeyFor({ name, kind: 'segment', timeline });
  try {
    const meta = await readFrame(storage, key);
    if (!meta?.scan || meta.startLsn === undefined) return null;
    return { name, ends: endsOf(await unpackScan(meta.scan, meta.startLsn)) };
  } catch (err) {
    // A damaged neighbour cannot be checked against; refusing for it would stop archiving for
    // good. Unreachable storage is not damage: that fails the push.
    if (!(err instanceof EnvelopeError) && asWalshipError(err).code !== 'OBJECT_CORRUPT') throw err;
    logger.warn('the archived neighbour is damaged: this file is not checked against it', { neighbour: name, key, error: (err as Error).message });
    return null;
  }
}

/** The archived neighbours of `file` (segment number `segNo`) on its timeline. */
export async function loadNeighbours(storage: StorageDriver, cat: Catalog, file: WalFileName, segNo: number, segSize: number): Promise<Neighbours> {
  const [prev, next] = await Promise.all([
    loadNeighbour(storage, cat, file.timeline, segNo - 1, segSize),
    // A .partial is the last file of its timeline: nothing follows it there.
    file.kind === 'segment' ? loadNeighbour(storage, cat, file.timeline, segNo + 1, segSize) : null,
  ]);
  return { prev, next };
}

/** Throws HISTORY_DIVERGED when `file` and its archived neighbours are not one history. */
export function checkContinuity(file: WalFileName, scan: ScanFacts, n: Neighbours): void {
  const me = endsOf(scan);
  const breaks = [n.prev && { other: n.prev.name, b: discontinuity(n.prev.ends, me) }, n.next && { other: n.next.name, b: discontinuity(me, n.next.ends) }];
  for (const x of breaks) {
    if (!x?.b) continue;
    throw new WalshipError(
      'HISTORY_DIVERGED',
      `diverged history on timeline ${file.timeline} at LSN ${formatLsn(x.b.lsn)}: ${file.name} and the archived ${x.other} are not one history (${x.b.reason}). ` +
        'Another server with this system identifier is archiving into this repository (a clone started by mistake, or an old primary that was not fenced): stop it. Nothing was stored',
    );
  }
}
