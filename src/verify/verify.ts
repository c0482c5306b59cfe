/**
 * `walship verify`: reads the repository back and says what could not be restored from it.
 *
 * - every archived WAL object (checks.ts), and each segment's continuity with its neighbours on
 *   its timeline (the links recovery follows across segments: wal/continuity.ts);
 * - every complete walship backup: documents, chunks, each piece against the manifest;
 * - what the planner sees: complete backups whose WAL is not all archived, and gaps that end a
 *   recoverable window;
 * - leftovers (temporary files, incomplete uploads) and objects nothing names.
 *
 * Incremental by default: what a verify found sound is recorded in the repository (state.ts) and
 * not read again; `--full` reads every stored byte again, checking in depth only what no earlier
 * verify did (else that the bytes are unchanged: checks.ts checkStoredWal), `--deep` everything in
 * depth. Objects are read `parallel` at a time, each whole, so memory is bounded by that many
 * objects, on this thread and a worker thread per further core.
 */
import { Catalog } from '../catalog/catalog.js';
import { loadPlannerInput } from '../recovery/catalog-input.js';
import { readIdentity, type RepoIdentity } from '../archive/identity.js';
import { WAL_PREFIX } from '../archive/keys.js';
import { INDEX_PREFIX, parseBlockKey } from '../archive/index-blocks.js';
import { listedFile } from '../archive/repo-reader.js';
import { loadNeighbour } from '../archive/continuity.js';
import { BACKUP_PREFIX } from '../backup/format.js';
import { Progress } from '../backup/progress.js';
import { computeRanges } from '../recovery/ranges.js';
import { msToMicros } from '../time.js';
import { runPool } from '../pool.js';
import { discontinuity, type SegmentEnds } from '../wal/continuity.js';
import { formatLsn } from '../wal/names.js';
import { syncCatalog, type RepoContext } from '../sync/sync.js';
import { availableParallelism } from 'node:os';
import type { Config } from '../config.js';
import { workerClient } from '../worker-rpc.js';
import { logger } from '../log.js';
import { VERIFY_COLUMNS, checkBackup, isFailure, runCheckJob, type ChunkCheck, type CheckJob, type Problem, type VerifyRow, type WalCheck } from './checks.js';
import type { PieceRef } from '../backup/read.js';
import { CHECKS_VERSION, RECHECK_PREFIX, emptyState, readState, segmentVerified, writeState, type VerifyState } from './state.js';
import { mergeIntervals } from '../intervals.js';

/** Catalog rows read at once. */
const PAGE_ROWS = 5000;

export interface VerifyOptions {
  full: boolean;
  /** Check everything in depth (implies full). */
  deep?: boolean;
  parallel: number;
  progress: boolean;
  /** The call's settings, for the checking threads (without them, everything runs on this thread). */
  cfg?: Config;
}

interface Checkers {
  wal(row: VerifyRow, stored?: { scanRecord: string | null }): Promise<WalCheck>;
  chunk(backup: string, chunk: string, pieces: Map<string, PieceRef>, storedSha256?: string): Promise<ChunkCheck>;
  close(): Promise<void>;
}

/**
 * Checks on this thread and on a worker thread per further core (check-worker.ts): each check
 * runs on the one with the fewest in flight. A thread that cannot start leaves its share to the
 * others.
 */
async function openCheckers(ctx: RepoContext, identity: RepoIdentity, cfg: Config | undefined, parallel: number): Promise<Checkers> {
  type Run = (job: CheckJob) => Promise<WalCheck | ChunkCheck>;
  const here: Run = (j) => runCheckJob(ctx.storage, identity, j);
  const lanes: Run[] = [here];
  const workers: import('node:worker_threads').Worker[] = [];
  const threads = cfg ? Math.min(parallel, availableParallelism()) : 1;
  for (let i = 1; i < threads; i++) {
    try {
      const { Worker } = await import('node:worker_threads');
      const w = new Worker(new URL('../verify/check-worker.js', import.meta.url), { workerData: { cfg, identity }, stdout: false, stderr: false });
      workers.push(w);
      const client = workerClient<CheckJob, WalCheck | ChunkCheck>(w, 'verify thread');
      lanes.push((job) => client.call(job));
    } catch (err) {
      logger.debug('verify thread unavailable', { error: (err as Error).message });
    }
  }
  // The lane with the fewest checks in flight (a thread still starting takes none meanwhile).
  const busy = lanes.map(() => 0);
  const next = async (job: CheckJob) => {
    const i = busy.indexOf(Math.min(...busy));
    busy[i]!++;
    try {
      return await lanes[i]!(job);
    } finally {
      busy[i]!--;
    }
  };
  let closed: Promise<void> | undefined;
  return {
    wal: (row, stored) => next({ kind: 'wal', row, stored }) as Promise<WalCheck>,
    chunk: (backup, chunk, pieces, storedSha256) => next({ kind: 'chunk', backup, chunk, pieces: [...pieces], storedSha256 }) as Promise<ChunkCheck>,
    close: () => (closed ??= Promise.all(workers.map((w) => w.terminate().catch(() => undefined))).then(() => undefined)),
  };
}

export interface VerifyReport {
  full: boolean;
  deep: boolean;
  /**
   * What this run read: objects, their bytes, and the bytes they decompressed to (what was
   * checked in depth); `unchanged`: objects checked in depth before, found byte for byte as then.
   */
  checked: { walFiles: number; backups: number; bytes: number; rawBytes: number; unchanged: number };
  /** Sound at an earlier verify, not read again. */
  skipped: { walFiles: number; backups: number };
  seconds: number;
  /** Bytes read per second, in MB (10^6). */
  mbPerSecond: number;
  problems: Problem[];
  failures: number;
  previousVerify: string | null;
}

export async function runVerify(ctx: RepoContext, opts: VerifyOptions): Promise<VerifyReport> {
  const t0 = Date.now();
  const identity = await readIdentity(ctx.storage);
  // The checking threads start (load their code) while the catalog is brought up to date.
  const starting = identity === null ? null : openCheckers(ctx, identity, opts.cfg, opts.parallel);
  try {
    return await verifyWith(ctx, opts, identity, starting, t0);
  } finally {
    if (starting) await (await starting).close();
  }
}

async function verifyWith(ctx: RepoContext, opts: VerifyOptions, identity: RepoIdentity | null, starting: Promise<Checkers> | null, t0: number): Promise<VerifyReport> {
  const synced = await syncCatalog(ctx);
  const problems: Problem[] = synced.damagedObjects.map((k) => ({ kind: 'damaged', what: k, detail: 'it cannot be read (sync left it out of the catalog)' }));
  const previous = await readState(ctx.storage);
  const full = opts.full || opts.deep === true;
  const deep = opts.deep === true;
  // What is not read at all (incremental), and what needs only its bytes proven unchanged (--full).
  const state = full ? emptyState() : previous;
  const checkedBefore = !deep && previous.checks === CHECKS_VERSION ? previous : emptyState();
  const report = (checked: VerifyReport['checked'], skipped: VerifyReport['skipped']): VerifyReport => {
    const seconds = (Date.now() - t0) / 1000;
    return {
      full,
      deep,
      checked,
      skipped,
      seconds,
      mbPerSecond: seconds > 0 ? checked.bytes / 1e6 / seconds : 0,
      problems,
      failures: problems.filter(isFailure).length,
      previousVerify: previous.at || null,
    };
  };
  if (identity === null || starting === null) return report({ walFiles: 0, backups: 0, bytes: 0, rawBytes: 0, unchanged: 0 }, { walFiles: 0, backups: 0 });
  // Objects a push replaced since they were verified: read again in depth.
  const recheck = new Map<string, string>();
  for await (const o of ctx.storage.list(RECHECK_PREFIX)) recheck.set(o.key.slice(RECHECK_PREFIX.length), o.key);

  const cat = Catalog.open(ctx.catalogPath)!;
  try {
    cat.checkRepository(ctx.repoUrl);
    // The catalog's files a page at a time (a catalog may list millions), those not known sound.
    const page = cat.db.prepare(`SELECT ${VERIFY_COLUMNS} FROM wal_files WHERE name > ? ORDER BY name LIMIT ${PAGE_ROWS}`);
    const doneFiles = new Set(state.files);
    const listed = (s: VerifyState, files: ReadonlySet<string>, r: VerifyRow) =>
      !recheck.has(r.name) && (r.kind === 'segment' && r.seg_no !== null ? segmentVerified(s, r.timeline, r.seg_no) : files.has(r.name));
    const isDone = (r: VerifyRow) => listed(state, doneFiles, r);
    const filesBefore = new Set(checkedBefore.files);
    const wasChecked = (r: VerifyRow) => r.body_sha256 !== null && listed(checkedBefore, filesBefore, r);
    const scanOf = cat.db.prepare('SELECT scan_record FROM wal_files WHERE name = ?').pluck();
    const pages = function* (): Iterable<VerifyRow[]> {
      for (let after = ''; ; ) {
        const rows = page.all(after) as VerifyRow[];
        if (rows.length === 0) return;
        after = rows[rows.length - 1]!.name;
        yield rows.filter((r) => !isDone(r));
      }
    };
    let total = 0;
    let todoFiles = 0;
    for (const rows of pages()) {
      todoFiles += rows.length;
      total += rows.reduce((n, r) => n + r.stored_size, 0);
    }
    const files = cat.db.prepare('SELECT count(*) FROM wal_files').pluck().get() as number;
    const dirs = new Set<string>();
    const ownBackups = cat.backups().filter((b) => b.source === 'walship' && b.status === 'complete');
    const backupTodo = ownBackups.filter((b) => !state.backups.includes(b.name));
    const progress = new Progress(total, opts.progress);
    let bytes = 0;
    let rawBytes = 0;
    let unchanged = 0;

    // WAL objects, then each sound segment against its neighbours as the catalog records them
    // (what the planner believes; a neighbour's record is checked against its object in turn).
    const sound = new Map<number, number[]>();
    const diverged = (tl: number, a: { name: string; ends: SegmentEnds }, b: { name: string; ends: SegmentEnds }) => {
      const br = discontinuity(a.ends, b.ends);
      if (br) problems.push({ kind: 'diverged', what: `${WAL_PREFIX}${b.name.slice(0, 16)}/${b.name}.zst`, detail: `timeline ${tl} at ${formatLsn(br.lsn)}: ${a.name} and ${b.name} are not one history (${br.reason})` });
    };
    const checkers = await starting;
    const check = async (row: VerifyRow) => {
      dirs.add(row.object_key.slice(0, row.object_key.lastIndexOf('/') + 1));
      const before = wasChecked(row);
      const c = await checkers.wal(row, before ? { scanRecord: (scanOf.get(row.name) as string | null) ?? null } : undefined);
      bytes += c.bytes;
      rawBytes += c.rawBytes;
      progress.add(c.bytes);
      if (c.problem) {
        problems.push(c.problem);
        return;
      }
      if (before) unchanged++;
      if (row.kind !== 'segment' || row.seg_no === null) {
        doneFiles.add(row.name);
        return;
      }
      (sound.get(row.timeline) ?? sound.set(row.timeline, []).get(row.timeline)!).push(row.seg_no);
      // Unchanged since it was checked against its neighbours (a new neighbour checks itself).
      if (before) return;
      const me = { name: row.name, ends: c.ends! };
      const prev = await loadNeighbour(ctx.storage, cat, row.timeline, row.seg_no - 1, identity.walSegmentSize);
      if (prev) diverged(row.timeline, prev, me);
      const next = await loadNeighbour(ctx.storage, cat, row.timeline, row.seg_no + 1, identity.walSegmentSize);
      // A next segment this run reads in depth checks itself against this one; any other is checked here.
      if (next && (segmentVerified(state, row.timeline, row.seg_no + 1) || segmentVerified(checkedBefore, row.timeline, row.seg_no + 1))) diverged(row.timeline, me, next);
    };
    const soundBackups: string[] = [];
    try {
      for (const rows of pages()) await runPool(rows, opts.parallel, check);
      progress.done();
      for (const b of backupTodo) {
        const names = await ctx.storage.children(`${BACKUP_PREFIX}${b.name}/`);
        const before = checkedBefore.backups.includes(b.name);
        const found = await checkBackup(ctx.storage, b.name, names, (chunk, pieces, sum) => checkers.chunk(b.name, chunk, pieces, sum), opts.parallel, before);
        bytes += found.stored;
        rawBytes += found.raw;
        problems.push(...found.problems);
        if (!found.problems.some(isFailure)) soundBackups.push(b.name);
      }
    } finally {
      await checkers.close();
    }

    // What the planner sees: the WAL every complete backup needs, and gaps inside the archive.
    const ranges = computeRanges(loadPlannerInput(cat), msToMicros(Date.now()));
    const own = new Set(ownBackups.map((b) => b.name));
    const reported = new Set<string>();
    for (const t of ranges.timelines) {
      for (const u of t.unusableBackups) {
        if (own.has(u.name) && !reported.has(u.name)) {
          reported.add(u.name);
          problems.push({ kind: 'unrestorable', what: `backup ${u.name}`, detail: u.reason });
        }
      }
      for (const w of t.windows) {
        if (w.end === 'gap' && w.missing && !reported.has(`gap ${w.missing.first}`)) {
          reported.add(`gap ${w.missing.first}`);
          const span = w.missing.count === 1 ? w.missing.first : `${w.missing.first} .. ${w.missing.last} (${w.missing.count})`;
          problems.push({ kind: 'gap', what: span, detail: `not archived: recovery on timeline ${t.timeline} from backup ${w.backup.name} stops at ${w.latest.lsn}, before WAL that is archived after it` });
        }
      }
    }

    await findLeftovers(ctx, full ? null : [...dirs], backupTodo.map((b) => b.name), identity.walSegmentSize, problems);

    // Record what is now known sound (what failed is read again next time).
    // Everything listed was checked in depth by this version, unless an older one's is skipped.
    const checks = full || previous.checks === CHECKS_VERSION || previous.at === '' ? CHECKS_VERSION : previous.checks;
    const next: VerifyState = {
      format: 1,
      at: new Date().toISOString(),
      full,
      ...(checks !== undefined ? { checks } : {}),
      checked: todoFiles + backupTodo.length,
      problems: problems.filter(isFailure).length,
      segments: { ...state.segments },
      files: [...doneFiles].sort(),
      backups: [...new Set([...state.backups.filter((b) => own.has(b)), ...soundBackups])].sort(),
    };
    for (const [tl, segs] of sound) next.segments[tl] = mergeIntervals([...(next.segments[tl] ?? []), ...segs.map((s) => [s, s] as const)]);
    await writeState(ctx.storage, next);
    // The markers read: their objects were read again (what failed stays out of the state).
    if (recheck.size > 0) await ctx.storage.remove([...recheck.values()]);
    return report({ walFiles: todoFiles, backups: backupTodo.length, bytes, rawBytes, unchanged }, { walFiles: files - todoFiles, backups: ownBackups.length - backupTodo.length });
  } finally {
    cat.close();
  }
}

/**
 * Leftovers of interrupted writes and objects nothing names: everywhere with --full; else in the
 * directories of what this run read.
 */
async function findLeftovers(ctx: RepoContext, dirs: readonly string[] | null, backups: readonly string[], segSize: number, problems: Problem[]): Promise<void> {
  const storage = ctx.storage;
  const prefixes = dirs === null ? [''] : [...dirs, ...backups.map((b) => `${BACKUP_PREFIX}${b}/`)];
  for (const prefix of prefixes) {
    for await (const l of storage.leftovers(prefix)) {
      problems.push({ kind: 'leftover', what: l.key, detail: `${l.kind === 'temporary-file' ? 'a temporary file' : 'an incomplete upload'} of ${l.size} bytes since ${l.since}` });
    }
  }
  if (dirs !== null) return;
  for await (const o of storage.list(WAL_PREFIX)) {
    if (!listedFile(o.key, o.size)) problems.push({ kind: 'orphan', what: o.key, detail: 'not an archived WAL file walship can name' });
  }
  for await (const o of storage.list(INDEX_PREFIX)) {
    if (!parseBlockKey(o.key, segSize)) problems.push({ kind: 'orphan', what: o.key, detail: 'not an index block walship can name' });
  }
  for (const id of await storage.children(BACKUP_PREFIX)) {
    const names = await storage.children(`${BACKUP_PREFIX}${id}/`);
    if (!names.includes('started.json') && !names.includes('backup.json')) {
      problems.push({ kind: 'orphan', what: `${BACKUP_PREFIX}${id}/`, detail: `${names.length} object(s) of no backup walship knows (no started.json or backup.json)` });
    } else if (names.includes('failed.json') && names.some((n) => n.startsWith('chunk-'))) {
      problems.push({ kind: 'leftover', what: `${BACKUP_PREFIX}${id}/`, detail: 'the chunks of a failed backup (walship expire removes them after retain_incomplete)' });
    }
  }
}
