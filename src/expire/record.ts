/**
 * The record an expire leaves in the repository before it removes anything:
 * `expire/<UTC time>-<random>.json`, created once, never changed. It says what that expire set out
 * to remove (catalog/expirations.ts), so that every host's catalog forgets it at its next sync,
 * and any later expire finishes what an interrupted one left.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { StorageDriver } from '../storage/driver.js';
import type { Expiry } from '../catalog/expirations.js';
import { damaged } from '../archive/repo-reader.js';

export const EXPIRE_PREFIX = 'expire/';

interface RecordDoc {
  format: 1;
  at: string;
  host: string;
  walBelowSeg: number | null;
  backups: string[];
  files: string[];
}

export function newExpiry(now: Date, removal: Pick<Expiry, 'walBelowSeg' | 'backups' | 'files'>): Expiry {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.(\d{3})Z$/, '$1Z');
  return { key: `${EXPIRE_PREFIX}${stamp}-${randomBytes(4).toString('hex')}.json`, at: now.toISOString(), ...removal };
}

export async function storeExpiry(storage: StorageDriver, e: Expiry): Promise<void> {
  const doc: RecordDoc = { format: 1, at: e.at, host: hostname(), walBelowSeg: e.walBelowSeg, backups: e.backups, files: e.files };
  await storage.putIfAbsent(e.key, Buffer.from(JSON.stringify(doc, null, 2) + '\n'), { contentType: 'application/json' });
}

/** The records whose keys sort after `after` (all of them when null), oldest first. */
export async function readExpiries(storage: StorageDriver, after: string | null): Promise<Expiry[]> {
  const keys: string[] = [];
  for await (const o of storage.list(EXPIRE_PREFIX, after ? { startAfter: after } : {})) if (o.key.endsWith('.json')) keys.push(o.key);
  const out: Expiry[] = [];
  for (const key of keys) {
    const buf = await storage.get(key);
    if (buf === null) continue;
    let doc: RecordDoc;
    try {
      doc = JSON.parse(buf.toString('utf8')) as RecordDoc;
    } catch {
      throw damaged(key, storage, 'it is not valid JSON');
    }
    if (doc.format !== 1 || !Array.isArray(doc.backups) || !Array.isArray(doc.files) || (doc.walBelowSeg !== null && !Number.isSafeInteger(doc.walBelowSeg))) {
      throw damaged(key, storage, 'it is not an expire record walship can read');
    }
    out.push({ key, at: doc.at, walBelowSeg: doc.walBelowSeg, backups: doc.backups, files: doc.files });
  }
  return out;
}
