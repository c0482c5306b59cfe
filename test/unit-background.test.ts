/**
 * The lock of walship's detached helpers (src/archive/background.ts): one holder at a time, its
 * content readable by others, a dead or silent holder's lock broken, release only by the holder.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, heartbeat, lockHolder, releaseLock } from '../src/archive/background.js';

const dir = mkdtempSync(join(tmpdir(), 'walship-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('helper lock', () => {
  it('has one holder, whose pid and details others can read; only the holder releases it', async () => {
    expect(await acquireLock(dir, 'a.lock', { walDir: '/x/pg_wal' })).toBe(true);
    expect(await acquireLock(dir, 'a.lock')).toBe(false);
    expect(await lockHolder(dir, 'a.lock')).toMatchObject({ pid: process.pid, walDir: '/x/pg_wal' });
    expect(await heartbeat(dir, 'a.lock')).toBe(true);
    // No temporary file is left behind.
    expect(readdirSync(dir)).toEqual(['a.lock']);
    await releaseLock(dir, 'a.lock');
    expect(await lockHolder(dir, 'a.lock')).toBeNull();
    expect(await acquireLock(dir, 'a.lock')).toBe(true);
    await releaseLock(dir, 'a.lock');
  });

  it('breaks the lock of a process that is gone, or whose heartbeat stopped; never releases another\'s', async () => {
    writeFileSync(join(dir, 'b.lock'), JSON.stringify({ pid: 2 ** 22 + 12345 }));
    expect(await lockHolder(dir, 'b.lock')).toBeNull();
    expect(await acquireLock(dir, 'b.lock')).toBe(true);

    writeFileSync(join(dir, 'c.lock'), JSON.stringify({ pid: 1 }));
    expect(await lockHolder(dir, 'c.lock')).toMatchObject({ pid: 1 });
    expect(await acquireLock(dir, 'c.lock')).toBe(false);
    expect(await heartbeat(dir, 'c.lock')).toBe(false);
    await releaseLock(dir, 'c.lock');
    expect(await lockHolder(dir, 'c.lock')).toMatchObject({ pid: 1 });
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(dir, 'c.lock'), old, old);
    expect(await lockHolder(dir, 'c.lock')).toBeNull();
    expect(await acquireLock(dir, 'c.lock')).toBe(true);
  });
});
