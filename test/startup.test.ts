/**
 * archive-push and archive-fetch are run once per WAL file: they must not load what the call
 * does not use (the S3 SDK costs ~140 ms, commander ~20 ms). A preloaded script records every
 * CommonJS module the process loaded (ESM imports of CommonJS packages land there too).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WALSHIP_BIN, removeTempDir, userTempDir } from './helpers/pg.js';
import { makeWalFixture, type WalFixture } from './helpers/fixtures.js';

let fx: WalFixture;
let work: string;
let probe: string;

beforeAll(async () => {
  fx = await makeWalFixture({ segments: 1 });
  work = userTempDir('startup');
  probe = join(work, 'probe.cjs');
  writeFileSync(
    probe,
    "process.on('exit', () => require('fs').writeFileSync(process.env.LOADED_OUT, JSON.stringify(Object.keys(require('module')._cache))));\n",
  );
  mkdirSync(join(work, 'repo'));
});
afterAll(() => removeTempDir(work));

function loaded(args: string[], env: Record<string, string> = {}): { code: number | null; modules: string[] } {
  const out = join(work, `loaded-${Math.random().toString(36).slice(2)}.json`);
  const r = spawnSync(process.execPath, ['-r', probe, WALSHIP_BIN, ...args], {
    env: { ...process.env, WALSHIP_CONFIG: '/dev/null', LOADED_OUT: out, ...env },
    encoding: 'utf8',
  });
  return { code: r.status, modules: JSON.parse(readFileSync(out, 'utf8')) as string[] };
}

const has = (mods: string[], pkg: string) => mods.some((m) => m.includes(`/node_modules/${pkg}/`));

describe('start-up cost of the per-file commands', () => {
  it('archive-push and archive-fetch on a filesystem repository load neither the S3 SDK nor commander', () => {
    const repo = ['--repo', join(work, 'repo'), '--catalog', join(work, 'c.db')];
    const push = loaded(['archive-push', join(fx.dir, fx.segments[0]!), ...repo]);
    expect(push.code).toBe(0);
    expect(has(push.modules, '@aws-sdk/client-s3')).toBe(false);
    expect(has(push.modules, 'commander')).toBe(false);
    expect(has(push.modules, 'zstd-napi')).toBe(true);
    const fetch = loaded(['archive-fetch', fx.segments[0]!, join(work, 'out'), ...repo]);
    expect(fetch.code).toBe(0);
    expect(has(fetch.modules, '@aws-sdk/client-s3')).toBe(false);
    expect(has(fetch.modules, 'commander')).toBe(false);
    // The end of the archive is answered without decompressing anything.
    const missing = loaded(['archive-fetch', '0000000100000000000000EE', join(work, 'out2'), ...repo]);
    expect(missing.code).toBe(1);
    expect(has(missing.modules, 'zstd-napi')).toBe(false);
  });

  it('loads the S3 SDK for an s3:// repository (the probe sees it)', () => {
    const r = loaded(['archive-fetch', fx.segments[0]!, join(work, 'out3'), '--repo', 's3://walship-probe/x', '--s3-endpoint', 'http://127.0.0.1:9', '--s3-max-retries', '0', '--s3-request-timeout', '200'], {
      AWS_ACCESS_KEY_ID: 'x',
      AWS_SECRET_ACCESS_KEY: 'y',
    });
    expect(r.code).toBe(255);
    expect(has(r.modules, '@aws-sdk/client-s3')).toBe(true);
  });
});
