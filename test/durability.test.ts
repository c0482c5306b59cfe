/**
 * Durability: archive-push killed with SIGKILL at any moment leaves no visible partial object
 * (whatever is visible under the final name is complete and verifies), and the retry succeeds.
 *
 * On a filesystem that holds absolutely. Object stores commit a PUT whole, but the S3 stand-in
 * used here (s3rver) exposes an interrupted upload: there the test checks the defence in depth
 * instead: fetch refuses the damaged object (255, never wrong bytes, never "missing") and the
 * next push of the same file replaces it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WALSHIP_BIN, removeTempDir, userTempDir } from './helpers/pg.js';
import { walship } from './helpers/walship.js';
import { makeWalFixture, type WalFixture } from './helpers/fixtures.js';
import { repoBackends, type RepoBackend } from './helpers/backends.js';
import { decodeObject } from '../src/archive/envelope.js';

let fx: WalFixture;
beforeAll(async () => {
  fx = await makeWalFixture({ walSegSizeMb: 16, segments: 1 });
});

function pushAndKill(args: string[], env: NodeJS.ProcessEnv, afterMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [WALSHIP_BIN, ...args], { env: { ...process.env, WALSHIP_CONFIG: '/dev/null', ...env }, stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), afterMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe.each(repoBackends())('push killed with SIGKILL ($name repository)', (backend: RepoBackend) => {
  let work: string;
  let repo: string;
  let env: Record<string, string>;
  afterAll(async () => {
    await backend.teardown?.();
    await removeTempDir(work);
  });

  it('never leaves a partial object under the final name, and the retry succeeds', async () => {
    work = userTempDir('kill');
    ({ repo, env } = await backend.setup(work));
    const seg = fx.segments[0]!;
    const key = `wal/${seg.slice(0, 16)}/${seg}.zst`;
    const catalog = join(work, 'catalog.db');
    const args = ['archive-push', join(fx.dir, seg), '--repo', repo, '--catalog', catalog];

    // How long a whole push takes here, to spread the kills over it.
    const t0 = Date.now();
    const probe = await walship(args, { env });
    expect(probe.code, probe.stderr).toBe(0);
    const full = Date.now() - t0;
    await backend.remove(key);

    const fetchArgs = ['archive-fetch', seg, join(work, 'out'), '--repo', repo, '--catalog', catalog];
    let completedByChance = 0;
    let repairedDamage = false;
    for (let i = 0; i < 16; i++) {
      const at = Math.round((full * (i + 0.5)) / 16);
      const code = await pushAndKill(args, env, at);
      if (code === 0) completedByChance++;
      const obj = await backend.driver().get(key);
      if (obj === null) continue;
      const decoded = await decodeObject(obj).catch((e: Error) => e);
      if (decoded instanceof Error) {
        // Only a store that exposes interrupted uploads gets here; a filesystem never does.
        // (s3rver may still be writing what the killed client had sent, so the object can
        // become whole a moment later.) A fetch delivers the right bytes or fails hard: never
        // wrong bytes, never "not in the archive".
        expect(backend.name, decoded.message).toBe('s3');
        const f = await walship(fetchArgs, { env });
        expect([0, 255], f.stderr).toContain(f.code);
        if (f.code === 0) expect(readFileSync(join(work, 'out')).equals(fx.read(seg))).toBe(true);
        else expect(f.stderr).toMatch(/code=OBJECT_CORRUPT/);
        if (!repairedDamage) {
          const p = await walship(args, { env });
          expect(p.code, p.stderr).toBe(0);
          expect(p.stderr).toMatch(/damaged copy replaced|already archived with identical content/);
          expect((await walship(fetchArgs, { env })).code).toBe(0);
          expect(readFileSync(join(work, 'out')).equals(fx.read(seg))).toBe(true);
          repairedDamage = true;
        }
      } else {
        // Visible means complete: it decodes and matches the segment.
        expect(decoded.raw.equals(fx.read(seg))).toBe(true);
      }
      await backend.remove(key);
    }
    // Hidden temporary files never show up as archived WAL.
    expect(await backend.listWalNames()).toEqual([]);
    const retry = await walship(args, { env });
    expect(retry.code, retry.stderr).toBe(0);
    const out = join(work, 'fetched');
    expect((await walship(['archive-fetch', seg, out, '--repo', repo, '--catalog', catalog], { env })).code).toBe(0);
    expect(readFileSync(out).equals(fx.read(seg))).toBe(true);
    expect(completedByChance).toBeLessThan(16);
  });
});
