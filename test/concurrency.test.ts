/**
 * Concurrent pushes (as PostgreSQL's archiver plus a manual retry, or two archivers by mistake)
 * never corrupt the repository or the catalog: each file is stored once, and of two different
 * contents under one name exactly one wins.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { removeTempDir, userTempDir } from './helpers/pg.js';
import { walship } from './helpers/walship.js';
import { makeTwinFixtures, makeWalFixture, type WalFixture } from './helpers/fixtures.js';
import { repoBackends, type RepoBackend } from './helpers/backends.js';

let fx: WalFixture;
let twins: [WalFixture, WalFixture];
beforeAll(async () => {
  [fx, twins] = await Promise.all([makeWalFixture({ segments: 4 }), makeTwinFixtures()]);
});

describe.each(repoBackends())('concurrent pushes ($name repository)', (backend: RepoBackend) => {
  let work: string;
  afterAll(async () => {
    await backend.teardown?.();
    await removeTempDir(work);
  });

  it('store each file once and keep the catalog consistent', async () => {
    work = userTempDir('conc');
    const { repo, env } = await backend.setup(work);
    const catalog = join(work, 'catalog.db');
    const push = (path: string) => walship(['archive-push', path, '--repo', repo, '--catalog', catalog], { env });

    // Every file twice, all at once (the very first pushes also race to create the identity and the catalog).
    const results = await Promise.all([...fx.files, ...fx.files].map((f) => push(join(fx.dir, f))));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    expect((await backend.listWalNames()).sort()).toEqual([...fx.files].sort());
    const db = new Database(catalog, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect((db.prepare('SELECT count(*) AS n FROM wal_files').get() as { n: number }).n).toBe(fx.files.length);
    db.close();

    // Two different contents under one name (cloned clusters): exactly one is archived, the other refused.
    const [ta, tb] = twins;
    const name = ta.segments[ta.segments.length - 1]!;
    const twinRepo = join(work, 'twin-repo');
    mkdirSync(twinRepo);
    const tpush = (path: string) => walship(['archive-push', path, '--repo', twinRepo, '--catalog', join(work, 'twin.db')], { env });
    const [ra, rb] = await Promise.all([tpush(join(ta.dir, name)), tpush(join(tb.dir, name))]);
    expect([ra.code, rb.code].sort()).toEqual([0, 4]);
  });
});
