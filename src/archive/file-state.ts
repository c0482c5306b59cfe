/**
 * A file's state for "unchanged since" checks (push read-ahead records, prefetch spool copies):
 * device, inode, size, mtime and ctime. A write to the file, or its replacement by another file,
 * changes at least one of them.
 */
import { statSync, type BigIntStats } from 'node:fs';

export interface FileState {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

const FIELDS: readonly (keyof FileState)[] = ['dev', 'ino', 'size', 'mtimeNs', 'ctimeNs'];

export function fileState(st: BigIntStats): FileState {
  return { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
}

/** The state as `key=value` pairs (key-values.ts), as records and spool metadata hold it. */
const PAIR_KEYS = [
  ['file_dev', 'dev'],
  ['file_ino', 'ino'],
  ['file_size', 'size'],
  ['file_mtime_ns', 'mtimeNs'],
  ['file_ctime_ns', 'ctimeNs'],
] as const;

export function fileStatePairs(state: FileState): [string, string][] {
  return PAIR_KEYS.map(([k, f]) => [k, state[f]]);
}

/** The state from pairs read back (`one` gives a key's value), or null when one is missing. */
export function fileStateFromPairs(one: (key: string) => string | undefined): FileState | null {
  const out: Partial<FileState> = {};
  for (const [k, f] of PAIR_KEYS) {
    const v = one(k);
    if (v === undefined) return null;
    out[f] = v;
  }
  return out as FileState;
}

/** Whether `st` is still the file described by `state`. */
export function sameFileState(state: Partial<FileState> | undefined, st: BigIntStats): boolean {
  if (!state) return false;
  const now = fileState(st);
  return FIELDS.every((k) => state[k] === now[k]);
}

/**
 * stat with nanosecond times, or null when the file is not there. Synchronous: it is on the
 * per-file calls' path, where a round trip through the thread pool costs more than the call.
 */
export async function statOrNull(path: string): Promise<BigIntStats | null> {
  try {
    return statSync(path, { bigint: true });
  } catch {
    return null;
  }
}
