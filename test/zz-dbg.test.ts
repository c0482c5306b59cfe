import { it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PgCluster, confString, userTempDir, walshipCommand } from './helpers/pg.js';
it('dbg', async () => {
  const work = userTempDir('dbg');
  const catalog = join(work, 'catalog', 'walship.db');
  const { mkdirSync, chownSync } = await import('node:fs');
  const { pgUser } = await import('./helpers/pg.js');
  mkdirSync(join(work,'repo')); chownSync(join(work,'repo'), pgUser().uid, pgUser().gid);
  const command = walshipCommand(`archive-push %p --repo '${join(work,'repo')}' --catalog '${catalog}' --push-readahead 5`);
  const p = await PgCluster.create({ conf: { archive_mode: 'on', archive_command: confString(command) } });
  await p.start();
  await p.sql('CREATE TABLE t (id int)');
  const n = await p.switchWal();
  await new Promise((r) => setTimeout(r, 3000));
  console.log(readFileSync(p.logFile, 'utf8').slice(-3000));
  await p.destroy();
}, 60000);
