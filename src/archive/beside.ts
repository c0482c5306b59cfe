/**
 * Where walship keeps a data directory's local state beside it: a directory named after pg_wal's
 * real path, on pg_wal's filesystem (the prefetch spool).
 */
import { realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** 48 bits of FNV-1a 64 as 12 hex digits: a short stable name, not a security measure (no crypto load per call). */
export function shortHash(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text, 'utf8')) h = ((h ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return (h >> 16n).toString(16).padStart(12, '0');
}

/**
 * A directory `<prefix>-<hash of pg_wal's real path>` beside the data directory (or beside
 * pg_wal's real directory when pg_wal is a link to another place), so that it is on pg_wal's
 * filesystem; `walDir` is pg_wal's real path.
 */
export function besideDataDir(walDir: string, prefix: string): { cwd: string; dir: string } {
  let cwd = '';
  try {
    cwd = realpathSync(process.cwd());
  } catch {
    /* no usable working directory */
  }
  const parent = dirname(walDir);
  const base = parent === cwd && cwd !== '/' ? dirname(cwd) : parent;
  return { cwd, dir: join(base, `${prefix}-${shortHash(walDir)}`) };
}
