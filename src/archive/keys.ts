/**
 * Repository layout: where each archived file lives. A key is derived from the file name alone,
 * so fetch never lists to find a file.
 *
 *   identity.json                                         the cluster this repository belongs to
 *   wal/00000002.history.zst                              timeline history files
 *   wal/0000000100000000/000000010000000000000003.zst     segments, grouped by timeline + log id
 *   wal/0000000100000000/000000010000000000000003.partial.zst
 *   wal/0000000100000000/000000010000000000000003.00000028.backup.zst
 */
import type { WalFileName } from '../wal/names.js';

export const WAL_PREFIX = 'wal/';

/**
 * `verify/recheck/<file name>`: left by a push that replaced a damaged object, so that the next
 * `walship verify` reads the new object in depth (verify/state.ts).
 */
export const RECHECK_PREFIX = 'verify/recheck/';

export function objectKeyFor(file: WalFileName): string {
  if (file.kind === 'history') return `${WAL_PREFIX}${file.name}.zst`;
  return `${WAL_PREFIX}${file.name.slice(0, 16)}/${file.name}.zst`;
}

/** The file name an object key holds, or null for keys that are not archived WAL. */
export function fileNameFromKey(key: string): string | null {
  if (!key.startsWith(WAL_PREFIX) || !key.endsWith('.zst')) return null;
  const base = key.slice(key.lastIndexOf('/') + 1, -'.zst'.length);
  return base;
}
