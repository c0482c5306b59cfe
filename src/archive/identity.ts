/**
 * The repository identity: which cluster a repository belongs to. Written once, by the first
 * push of a segment (or `walship init --pgdata`), and checked by every later push and fetch.
 */
import { WalshipError } from '../errors.js';
import type { StorageDriver } from '../storage/driver.js';

export const IDENTITY_KEY = 'identity.json';

export interface RepoIdentity {
  format: 1;
  systemIdentifier: string;
  pgMajor: number;
  walSegmentSize: number;
  createdAt: string;
  createdBy: string;
}

export interface ClusterFacts {
  systemIdentifier: string;
  pgMajor: number;
  segSize: number;
}

function parseIdentity(buf: Buffer): RepoIdentity | null {
  try {
    const id = JSON.parse(buf.toString('utf8')) as RepoIdentity;
    return id.format === 1 && typeof id.systemIdentifier === 'string' && typeof id.walSegmentSize === 'number' ? id : null;
  } catch {
    return null;
  }
}

export async function readIdentity(storage: StorageDriver): Promise<RepoIdentity | null> {
  const buf = await storage.get(IDENTITY_KEY);
  if (buf === null) return null;
  let id = parseIdentity(buf);
  // Some object stores expose an upload while it is in flight: look again before judging.
  for (let i = 0; !id && i < 3; i++) {
    await new Promise((r) => setTimeout(r, 300));
    const again = await storage.get(IDENTITY_KEY);
    id = again && parseIdentity(again);
  }
  if (!id) throw new WalshipError('REPOSITORY_INVALID', `${storage.location}/${IDENTITY_KEY} is damaged: it is not a walship identity`);
  return id;
}

export function describeIdentity(id: RepoIdentity): string {
  return `system identifier ${id.systemIdentifier}, PostgreSQL ${id.pgMajor}, ${id.walSegmentSize / 1048576} MiB segments`;
}

/** Throws WRONG_CLUSTER when the facts of a file do not match the repository's identity. */
export function checkIdentity(id: RepoIdentity, facts: ClusterFacts, what: string, location: string): void {
  const problems: string[] = [];
  if (facts.systemIdentifier !== id.systemIdentifier) problems.push(`system identifier ${facts.systemIdentifier}`);
  if (facts.pgMajor !== id.pgMajor) problems.push(`PostgreSQL ${facts.pgMajor}`);
  if (facts.segSize !== id.walSegmentSize) problems.push(`${facts.segSize / 1048576} MiB segments`);
  if (problems.length > 0) {
    throw new WalshipError(
      'WRONG_CLUSTER',
      `${what} is from another cluster (${problems.join(', ')}): repository ${location} belongs to the cluster with ${describeIdentity(id)}; use a separate repository per cluster`,
    );
  }
}

/** Reads the identity, creating it from `facts` when the repository has none yet. */
export async function ensureIdentity(storage: StorageDriver, facts: ClusterFacts, version: string): Promise<RepoIdentity> {
  const existing = await readIdentity(storage);
  if (existing) return existing;
  const id: RepoIdentity = {
    format: 1,
    systemIdentifier: facts.systemIdentifier,
    pgMajor: facts.pgMajor,
    walSegmentSize: facts.segSize,
    createdAt: new Date().toISOString(),
    createdBy: `walship ${version}`,
  };
  const res = await storage.putIfAbsent(IDENTITY_KEY, Buffer.from(JSON.stringify(id, null, 2) + '\n'), { contentType: 'application/json' });
  if (res === 'created') return id;
  // Another push created it first.
  return (await readIdentity(storage))!;
}
