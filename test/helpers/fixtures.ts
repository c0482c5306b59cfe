/**
 * Real WAL for tests: a throwaway cluster whose archive_command copies completed files into a
 * directory, so tests get genuine segments, a .backup file and (optionally) a .history file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { PgCluster, confString, userTempDir } from './pg.js';

export interface WalFixture {
  dir: string;
  /** Completed segment file names, in order. */
  segments: string[];
  files: string[];
  systemIdentifier: string;
  read(name: string): Buffer;
}

export async function makeWalFixture(opts: { walSegSizeMb?: number; segments?: number } = {}): Promise<WalFixture> {
  const base = userTempDir('fixture');
  const out = join(base, 'wal');
  const c = await PgCluster.create({
    baseDir: base,
    walSegSizeMb: opts.walSegSizeMb ?? 1,
    conf: {
      archive_mode: 'on',
      archive_command: confString(`mkdir -p ${out} && cp %p ${out}/%f`),
      timezone: "'UTC'",
    },
  });
  try {
    await c.start();
    await c.sql('CREATE TABLE f (id int, v text)');
    const n = opts.segments ?? 3;
    let last = '';
    for (let i = 0; i < n; i++) {
      await c.sql(`INSERT INTO f SELECT g, md5(g::text) FROM generate_series(1, 2000) g`);
      last = await c.switchWal();
    }
    await c.waitArchived(last);
    const systemIdentifier = await c.systemIdentifier();
    await c.stop();
    const files = readdirSync(out).sort();
    return {
      dir: out,
      files,
      segments: files.filter((f) => /^[0-9A-F]{24}$/.test(f)),
      systemIdentifier,
      read: (name) => readFileSync(join(out, name)),
    };
  } finally {
    await c.stop('immediate').catch(() => undefined);
  }
}

/**
 * Two clusters cloned from one data directory (as a copied VM or a restored backup started
 * twice would be): same system identifier, same segment names, different content.
 */
export async function makeTwinFixtures(): Promise<[WalFixture, WalFixture]> {
  const bases = [userTempDir('twin-a'), userTempDir('twin-b')];
  const outs = bases.map((b) => join(b, 'wal'));
  const a = await PgCluster.create({ baseDir: bases[0], walSegSizeMb: 1 });
  execFileSync('cp', ['-a', a.dataDir, join(bases[1]!, 'data')]);
  const b = await PgCluster.create({ baseDir: bases[1], noInit: true });
  const clusters = [a, b];
  try {
    return (await Promise.all(
      clusters.map(async (c, i) => {
        c.setConf({ archive_mode: 'on', archive_command: confString(`mkdir -p ${outs[i]} && cp %p ${outs[i]}/%f`) });
        await c.start();
        await c.sql(`CREATE TABLE twin (v text); INSERT INTO twin SELECT 'twin ${i} ' || g FROM generate_series(1, ${1000 * (i + 1)}) g`);
        const last = await c.switchWal();
        await c.waitArchived(last);
        const systemIdentifier = await c.systemIdentifier();
        await c.stop();
        const files = readdirSync(outs[i]!).sort();
        return {
          dir: outs[i]!,
          files,
          segments: files.filter((f) => /^[0-9A-F]{24}$/.test(f)),
          systemIdentifier,
          read: (name: string) => readFileSync(join(outs[i]!, name)),
        };
      }),
    )) as [WalFixture, WalFixture];
  } finally {
    for (const c of clusters) await c.stop('immediate').catch(() => undefined);
  }
}
