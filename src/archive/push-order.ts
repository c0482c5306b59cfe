/**
 * The background pusher stores segments in order. It works on several segments at once (lanes:
 * validation, scan, zstd in parallel), but a segment whose predecessor is still being pushed by
 * the pusher waits for that push to end before it is stored, and is not stored at all when the
 * predecessor was not (refused, failed): then it is deferred and tried again later.
 *
 * Why: a segment stored ahead of a predecessor that is then refused (another server with this
 * system identifier archived other WAL under that name) would be an island of the refused
 * history in the repository, blocking the other server at the next name. With the pusher in
 * order, and PostgreSQL's archiver in order too, every segment is checked against a stored
 * predecessor (archive/continuity.ts); only the first segment of a timeline, or one after a gap
 * in pg_wal, is stored without one.
 *
 * What the pusher leaves in its state directory (pusher.ts) says how the predecessor's push
 * went: `<name>.pushing` while it is in flight (written before the next segment's push starts),
 * `<name>.stored` as soon as its object is in the repository (markStored, before the catalog is
 * indexed), the record `<name>` once the push is done, nothing (or `<name>.failed`) when it was
 * not stored.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { writeFileAtomic } from '../local/atomic-write.js';

/** Suffix of the marker beside a record while the pusher's push of its segment is in flight. */
export const PUSHING = '.pushing';
/** Suffix of the marker of a segment whose object is stored (its push may still be indexing it). */
export const STORED = '.stored';
const POLL_MS = 2;
/** A predecessor in flight longer than this (a stalled upload) defers the segment. */
const MAX_WAIT_MS = 600_000;

/**
 * Waits while the pusher's push of `prev` (in `walDir`) is in flight. 'settled': it is stored, or
 * it is not waiting in pg_wal (archived already, or never there: the first of a timeline, a
 * gap); the caller looks for it in the repository. 'pending': it is `.ready` and not stored.
 */
export async function awaitPredecessor(stateDir: string, walDir: string, prev: string): Promise<'settled' | 'pending'> {
  const record = join(stateDir, prev);
  for (const deadline = Date.now() + MAX_WAIT_MS; !existsSync(record + STORED) && existsSync(record + PUSHING); ) {
    if (Date.now() > deadline) return 'pending';
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  if (existsSync(record + STORED) || existsSync(record)) return 'settled';
  return existsSync(join(walDir, 'archive_status', `${prev}.ready`)) ? 'pending' : 'settled';
}

/** Marks `name` stored, for the pusher's push of the next segment (written once its object is durable). */
export async function markStored(stateDir: string, name: string): Promise<void> {
  await writeFileAtomic(join(stateDir, name + STORED), '');
}
