/**
 * walship check against a real server archiving into a filesystem repository: it passes while
 * archiving works, and names the reason when it does not: archive_command that is not walship,
 * archiving that fails, archiving into another repository.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { confString, pgUser, walshipCommand } from './helpers/pg.js';
import { startArchiving, type Archiving } from './helpers/archiving.js';
import { fsBackend } from './helpers/backends.js';

describe('walship check (filesystem repository)', () => {
  let a: Archiving;
  const setCommand = async (cmd: string) => {
    await a.primary.sql(`ALTER SYSTEM SET archive_command = ${confString(cmd)}`);
    await a.primary.sql('SELECT pg_reload_conf()');
    for (let i = 0; i < 100 && (await a.primary.value("SELECT current_setting('archive_command')")) !== cmd; i++) await new Promise((r) => setTimeout(r, 50));
  };
  const check = () => a.run(['check', '--timeout', '20'], a.pgEnv());

  beforeAll(async () => {
    a = await startArchiving(fsBackend(), 'check');
    await a.primary.sql('CREATE TABLE t AS SELECT generate_series(1, 100) AS id');
  });
  afterAll(async () => {
    await a?.cleanup();
  });

  it('passes while archiving into this repository works: archived, indexed, fetched back', async () => {
    const r = await check();
    // Twice in a row: an idle server still switches to a new segment.
    const again = await check();
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.split(' ')[2]).not.toBe(r.stdout.split(' ')[2]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^check ok: [0-9A-F]{24} archived into file:\/\/.* in [\d.]+ s, indexed, and fetched back \(16777216 bytes, verified\)\n$/);
  });

  it('names the reason when it does not: not walship, failing, another repository (exit 12)', async () => {
    const original = await a.primary.value("SELECT current_setting('archive_command')");
    try {
      await setCommand('cp %p /nowhere/%f');
      let r = await check();
      expect(r.code, r.stdout + r.stderr).toBe(12);
      expect(r.stderr).toMatch(/check failed: archive_command is not walship archive-push: 'cp %p \/nowhere\/%f'/);

      await setCommand(walshipCommand(`archive-push %p --repo '${join(a.work, 'no-such-repo')}' --catalog '${a.catalog}'`));
      r = await check();
      expect(r.code, r.stdout + r.stderr).toBe(12);
      expect(r.stderr).toMatch(/check failed: archiving is failing: PostgreSQL's last failure is [0-9A-F]{24} at /);

      const other = join(a.work, 'other-repo');
      mkdirSync(other);
      chownSync(other, pgUser().uid, pgUser().gid);
      await setCommand(walshipCommand(`archive-push %p --repo '${other}' --catalog '${join(a.work, 'catalog', 'other.db')}'`));
      r = await check();
      expect(r.code, r.stdout + r.stderr).toBe(12);
      expect(r.stderr).toMatch(/archive_command archives into another repository/);
    } finally {
      await setCommand(original);
    }
  });
});
