/**
 * Push read-ahead, the call's side: archive-push of a segment is answered by the background
 * pusher (pusher.ts) when it can be, so that PostgreSQL's one-process-per-file archiver is not
 * what limits how fast a backlog is archived.
 *
 * The pusher keeps the `.ready` segments of pg_wal pushed ahead of PostgreSQL, through the
 * ordinary pushFile (same validation, scan, storage and catalog writes), and records each one it
 * stored, durably, in a small state directory next to the catalog (`<catalog>.readahead/<name>`,
 * key=value lines: repository, directory, device, inode, size, mtime, ctime, SHA-256).
 * PostgreSQL's call for that file (in node, or in the agent, which runs the same code) checks the
 * record against a fresh stat of the file; when everything matches it returns 0
 * without reading the file or touching the repository, else it drops the record and pushes the
 * file itself. A call that finds no record starts the pusher when other segments are waiting
 * (else it just pushes its file), and waits for the pusher to store its file; whenever the pusher
 * cannot (it failed on the file, died, or is too slow) the call pushes the file itself, so the
 * exit code always comes from a push of this file by this call or a record that proves one.
 *
 * Never touched: PostgreSQL's own files (archive_status is only listed). Timeline history and
 * backup history files, and `.partial` segments, are never read ahead: they are pushed when
 * PostgreSQL asks, as before.
 */
import { basename, dirname, join } from 'node:path';
import { readdirSync, realpathSync, rmSync, utimesSync, type BigIntStats } from 'node:fs';
import { writeFileAtomic, writeFileAtomicSync } from '../local/atomic-write.js';
import { privateDirOrSay, readPrivateFile } from '../local/private.js';
import type { Config } from '../config.js';
import { repoCanonical, type ArchiveContext } from './context.js';
import { logger } from '../log.js';
import { parseWalFileName } from '../wal/names.js';
import { lockHolder, lockHolderAlive, startDetached } from './background.js';
import { fileStateFromPairs, fileStatePairs, sameFileState, statOrNull, type FileState } from './file-state.js';
import { formatKeyValues, parseKeyValues } from './key-values.js';
import type { PushResult } from './push.js';
import { PUSHING } from './push-order.js';

export const PUSHER_LOCK = 'pusher.lock';
export const PUSHER_LOG = 'pusher.log';
/**
 * Touched by every call (its mtime): the pusher pushes ahead only while PostgreSQL's calls to
 * walship come, and not for another archive_command's benefit.
 */
export const CALLED = 'called';
/** Suffix of the pusher's marker beside a record of a segment it failed to push (with the error); in flight: PUSHING (push-order.ts). */
export const FAILED = '.failed';
export const SEGMENT_READY_RE = /^([0-9A-F]{24})\.ready$/;

const POLL_MS = 5;
const BY_PUSHER = 'archived by the background pusher';
/** A call waits at most this long for the pusher to store its file, then pushes it itself. */
const WAIT_MS = 60_000;
/** ... and this long for the pusher to start on it at all. */
const WAIT_START_MS = 10_000;

export interface PushRecord extends FileState {
  name: string;
  /** Canonical repository URL. */
  repo: string;
  /** Real path of the directory the file was pushed from. */
  dir: string;
  sha256: string;
  pushedAt: string;
}

/** Where the done-records live: next to the catalog, one small file per segment. */
export function readaheadStateDir(catalogPath: string): string {
  return `${catalogPath}.readahead`;
}

/** The record's format (its first line). */
const RECORD_FORMAT = '2';

export function recordText(rec: PushRecord): string {
  return formatKeyValues([
    ['format', RECORD_FORMAT],
    ['name', rec.name],
    ['repo', rec.repo],
    ['dir', rec.dir],
    ...fileStatePairs(rec),
    ['sha256', rec.sha256],
    ['pushed_at', rec.pushedAt],
  ]);
}

/** The record at `path` (a trusted file, local/private.ts); null when there is none or it is not a whole record of this format. */
export function readRecord(path: string): PushRecord | null {
  const text = readPrivateFile(path);
  return text === null ? null : parseRecord(text);
}

/** A record's text read back; null when it is not a whole record of this format. */
export function parseRecord(text: string): PushRecord | null {
  const kv = parseKeyValues(text);
  const one = (k: string) => kv.get(k)?.[0];
  const [name, repo, dir, sha256, pushedAt] = [one('name'), one('repo'), one('dir'), one('sha256'), one('pushed_at')];
  const state = fileStateFromPairs(one);
  if (one('format') !== RECORD_FORMAT || !name || !repo || !dir || !sha256 || !pushedAt || !state) return null;
  return { name, repo, dir, ...state, sha256, pushedAt };
}

/**
 * Whether a read-ahead record proves `path` was archived as it is now: same repository, same
 * directory, and the file's device, inode, size, mtime and ctime unchanged since it was pushed.
 */
export function recordMatches(rec: PushRecord, st: BigIntStats, repo: string, dir: string, name: string): boolean {
  return rec.name === name && rec.repo === repo && rec.dir === dir && sameFileState(rec, st);
}

/** Writes a record durably: a temp file fsynced, renamed into place, the directory fsynced. */
export async function writeRecord(stateDir: string, rec: PushRecord): Promise<void> {
  await writeFileAtomic(join(stateDir, rec.name), recordText(rec), { durable: true });
}

/** Whether another segment than `name` is waiting in archive_status. */
async function othersReady(walDir: string, name: string): Promise<boolean> {
  try {
    for (const e of readdirSync(join(walDir, 'archive_status'))) {
      const m = SEGMENT_READY_RE.exec(e);
      if (m && m[1] !== name) return true;
    }
  } catch {
    /* no archive_status: not PostgreSQL's pg_wal */
  }
  return false;
}

type Answer = 'archived' | 'changed' | 'none';

/**
 * Checks the record for `name`. A record that matches stays until PostgreSQL has marked the file
 * done (the pusher then deletes it), so the pusher does not push the file again meanwhile.
 */
async function answerFromRecord(recPath: string, path: string, repo: string, realDir: string, name: string, how: string): Promise<Answer> {
  const rec = readRecord(recPath);
  if (!rec) return 'none';
  const st = await statOrNull(path);
  if (st && recordMatches(rec, st, repo, realDir, name)) {
    logger.info(how, { file: name, sha256: rec.sha256.slice(0, 16) });
    return 'archived';
  }
  try {
    rmSync(recPath, { force: true });
  } catch {
    /* the pusher deletes it later */
  }
  logger.info('file changed since read-ahead pushed it (or moved); pushing it again', { file: name });
  return 'changed';
}

/**
 * Waits for the pusher to store `name`. Returns 'none' when the call must push it itself (the
 * pusher failed on it, died, or did not get to it in time).
 */
async function waitForPusher(stateDir: string, path: string, repo: string, realDir: string, name: string): Promise<Answer> {
  const recPath = join(stateDir, name);
  const started = Date.now();
  let nextLiveCheck = started + 500;
  let seenPushing = false;
  for (;;) {
    const answer = await answerFromRecord(recPath, path, repo, realDir, name, BY_PUSHER);
    if (answer !== 'none') return answer;
    const failure = readPrivateFile(recPath + FAILED);
    if (failure !== null) {
      logger.warn('the background push failed; pushing the file here', { file: name, error: failure.trim() });
      return 'none';
    }
    const now = Date.now();
    seenPushing ||= (await statOrNull(recPath + PUSHING)) !== null;
    if (now - started > WAIT_MS || (!seenPushing && now - started > WAIT_START_MS)) {
      logger.warn('the background pusher is slow to store this file; pushing it here', { file: name, waitedMs: now - started });
      return 'none';
    }
    if (now > nextLiveCheck) {
      noteCall(stateDir); // still asking
      if (!(await lockHolderAlive(stateDir, PUSHER_LOCK))) {
        // One last look: it may have finished just before it exited.
        return answerFromRecord(recPath, path, repo, realDir, name, BY_PUSHER);
      }
      nextLiveCheck = now + 500;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Says that a call came (CALLED), in the state directory the caller checked; never fails. */
function noteCall(stateDir: string): void {
  const path = join(stateDir, CALLED);
  const now = new Date();
  try {
    utimesSync(path, now, now);
  } catch {
    try {
      writeFileAtomicSync(path, '');
    } catch {
      /* absent directory: no pusher to tell */
    }
  }
}

/**
 * Whether the read-ahead state directory can be used: absent (nothing recorded yet; with `create`
 * it is made) or a private directory of this user's (local/private.ts). When it is not, says so:
 * the call pushes its file itself and starts no pusher.
 */
export function stateUsable(stateDir: string, create: boolean): boolean {
  const state = privateDirOrSay(stateDir, { create, what: 'the read-ahead state directory', without: 'pushing without read-ahead', remedy: 'remove it' });
  return state === 'ok' || (state === 'absent' && !create);
}

/**
 * Starts the background pusher for `walDir` (its log at `logPath`); never fails. False: none was
 * started (an agent on its way will run it for the next calls), so the call pushes its own file.
 */
export type StartPusher = (walDir: string, logPath: string) => Promise<boolean>;

/** A pusher in a process of its own, started with the call's setting flags. */
export const detachedPusher =
  (flagArgs: readonly string[]): StartPusher =>
  async (dir, log) => {
    await startDetached(['archive-push-ahead', dir, ...flagArgs], log, 'background pusher');
    return true;
  };

/**
 * archive-push with read-ahead. `makeCtx` opens the repository lazily: a call answered from a
 * done-record never loads a storage driver (nor the S3 SDK). `flagArgs` (the setting flags as
 * given) are passed on to the pusher it starts: detached, or by `startPusher` (the agent runs it
 * in its own process).
 */
export async function archivePushWithReadahead(
  cfg: Config,
  path: string,
  makeCtx: () => Promise<ArchiveContext>,
  flagArgs: string[],
  startPusher?: StartPusher,
): Promise<PushResult | null> {
  const name = basename(path);
  const file = parseWalFileName(name);
  // push.js (validation, scanner, catalog, zstd) is loaded only by calls that push.
  const pushHere = async () => (await import('./push.js')).pushFile(await makeCtx(), path);
  if (cfg.push_readahead <= 0 || file?.kind !== 'segment') return pushHere();

  const repo = repoCanonical(cfg);
  const stateDir = readaheadStateDir(cfg.catalog);
  if (!stateUsable(stateDir, false)) return pushHere();
  const walDir = dirname(path);
  let realDir: string;
  try {
    realDir = realpathSync(walDir);
  } catch {
    return pushHere(); // pushFile reports the unreadable file
  }

  return answerOrPush();

  async function answerOrPush(): Promise<PushResult | null> {
    noteCall(stateDir);
    const answer = await answerFromRecord(join(stateDir, name), path, repo, realDir, name, 'archived earlier by read-ahead');
    if (answer === 'archived') return null;
    if (answer === 'changed') return pushHere();

    const holder = await lockHolder(stateDir, PUSHER_LOCK);
    // A pusher for another pg_wal (another cluster's files, or a copy of them) is no help here.
    if (holder && holder.walDir !== realDir) return pushHere();
    if (!holder) {
      // A lone file is pushed here; a backlog is worth the pusher.
      if (!(await othersReady(walDir, name)) || !stateUsable(stateDir, true)) return pushHere();
      noteCall(stateDir);
      const log = join(stateDir, PUSHER_LOG);
      if (!(await (startPusher ?? detachedPusher(flagArgs))(realDir, log))) return pushHere();
    }
    if ((await waitForPusher(stateDir, path, repo, realDir, name)) === 'archived') return null;
    return pushHere();
  }
}
