/**
 * The one writer of whole local files (src/local/atomic-write.ts): whole or nothing, never
 * through a link, create-only when asked, no temporary file left behind, and the only such writer
 * in src/. Also: what it leaves when killed is recognised and swept from a filesystem repository,
 * and archive-fetch's delivery no longer writes through a predictable temporary name.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { isAbandonedTemp, isTempName, tempPathFor, writeFileAtomic, writeFileAtomicSync } from '../src/local/atomic-write.js';
import { deliver } from '../src/archive/fetch.js';
import { FsDriver } from '../src/storage/fs.js';
import { ROOT } from './helpers/pg.js';

const dir = mkdtempSync(join(tmpdir(), 'walship-atomic-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const DEAD_PID = 2 ** 22 + 12345;

describe('writeFileAtomic', () => {
  it('writes the whole file, private by default, and leaves no temporary file', async () => {
    const p = join(dir, 'a');
    expect(writeFileAtomicSync(p, 'one')).toBe('written');
    expect(await writeFileAtomic(p, Buffer.from('two'), { durable: true })).toBe('written');
    expect(readFileSync(p, 'utf8')).toBe('two');
    expect(statSync(p).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['a']);
  });

  it('create-only never replaces: "exists", the old content kept', async () => {
    const p = join(dir, 'b');
    expect(await writeFileAtomic(p, 'first', { createOnly: true })).toBe('written');
    expect(await writeFileAtomic(p, 'second', { createOnly: true, durable: true })).toBe('exists');
    expect(writeFileAtomicSync(p, 'third', { createOnly: true })).toBe('exists');
    expect(readFileSync(p, 'utf8')).toBe('first');
    expect(readdirSync(dir).filter(isTempName)).toEqual([]);
  });

  it('replaces a symbolic link planted at the target instead of writing through it', async () => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious');
    const p = join(dir, 'c');
    symlinkSync(victim, p);
    await writeFileAtomic(p, 'data');
    expect(lstatSync(p).isFile()).toBe(true);
    expect(readFileSync(victim, 'utf8')).toBe('precious');
  });

  it('removes its temporary file when the write fails', async () => {
    const p = join(dir, 'd');
    mkdirSync(join(p, 'inside'), { recursive: true }); // a non-empty directory: the rename fails
    await expect(writeFileAtomic(p, 'x')).rejects.toThrow();
    expect(() => writeFileAtomicSync(p, 'x')).toThrow();
    expect(readdirSync(dir).filter(isTempName)).toEqual([]);
  });

  it('takes a fresh, unguessable temporary name each time, and tells which ones are abandoned', () => {
    const names = new Set(Array.from({ length: 50 }, () => tempPathFor(join(dir, 'e'))));
    expect(names.size).toBe(50);
    for (const n of names) expect(relative(dir, n)).toMatch(new RegExp(`^\\.e\\.${process.pid}\\.[0-9a-f]{12}\\.tmp$`));
    const dead = `.x.zst.${DEAD_PID}.0123abcd.tmp`;
    expect(isAbandonedTemp(dead)).toBe(true);
    expect(isAbandonedTemp(`.x.${process.pid}.0123456789ab.tmp`)).toBe(false);
    expect(isAbandonedTemp(dead, Date.now(), 60_000)).toBe(false);
    expect(isAbandonedTemp(dead, Date.now() - 120_000, 60_000)).toBe(true);
    expect(isAbandonedTemp('.position.12.tmp')).toBe(false);
    expect(isAbandonedTemp('000000010000000000000001')).toBe(false);
  });
});

describe('archive-fetch\'s delivery', () => {
  it('does not follow a link planted at the temporary name it used to write through', async () => {
    // Before, DEST was written as `.<dest>.walship-<pid>.tmp`, opened without O_EXCL|O_NOFOLLOW.
    const victim = join(dir, 'victim-2');
    writeFileSync(victim, 'precious');
    const target = join(dir, 'RECOVERYXLOG');
    symlinkSync(victim, join(dir, `.RECOVERYXLOG.walship-${process.pid}.tmp`));
    await deliver(target, Buffer.from('wal'));
    expect(readFileSync(target, 'utf8')).toBe('wal');
    expect(readFileSync(victim, 'utf8')).toBe('precious');
  });
});

describe('a filesystem repository', () => {
  it('removes temporary files a killed push left, once old enough and their writer gone, and no others', async () => {
    const root = join(dir, 'repo');
    const segDir = join(root, 'wal', '0000000100000000');
    mkdirSync(segDir, { recursive: true });
    const old = new Date(Date.now() - 3_600_000);
    const leftover = `.000000010000000000000001.zst.${DEAD_PID}.0123abcd.tmp`;
    const recent = `.000000010000000000000002.zst.${DEAD_PID}.0123abce.tmp`;
    const live = `.000000010000000000000003.zst.1.0123abcf.tmp`; // pid 1 is alive
    for (const n of [leftover, recent, live]) writeFileSync(join(segDir, n), Buffer.alloc(1024));
    for (const n of [leftover, live]) utimesSync(join(segDir, n), old, old);
    const d = new FsDriver(root);
    expect(await d.putIfAbsent('wal/0000000100000000/000000010000000000000004.zst', Buffer.from('object'))).toBe('created');
    expect(readdirSync(segDir).sort()).toEqual([recent, live, '000000010000000000000004.zst'].sort());
    const fresh = join(root, 'wal', '0000000200000000');
    await d.putIfAbsent('wal/0000000200000000/000000020000000000000001.zst', Buffer.from('object'));
    expect(statSync(fresh).mode & 0o777).toBe(0o700);
  });
});

describe('the source tree', () => {
  it('writes whole local files only through src/local/atomic-write.ts', () => {
    // Every temporary-file-then-rename writer is that helper; the only other renames move a
    // verified spooled segment into place (src/archive/prefetch.ts) and a rebuilt catalog, a
    // closed SQLite file, where there is none yet (src/sync/sync.ts).
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else if (e.name.endsWith('.ts')) files.push(join(d, e.name));
      }
    };
    walk(join(ROOT, 'src'));
    const offenders: string[] = [];
    for (const f of files) {
      const rel = relative(ROOT, f);
      if (rel === 'src/local/atomic-write.ts') continue;
      const code = readFileSync(f, 'utf8')
        .split('\n')
        .filter((l) => !/^\s*(\/\/|\*|\/\*)/.test(l))
        .join('\n');
      for (const pattern of [/\bwriteFile(Sync)?\(/, /\blink(Sync)?\(/, /\.rename\(/, /\brename\(/, /['"`]\.tmp['"`]|\.tmp`/]) {
        if (pattern.test(code)) offenders.push(`${rel}: ${pattern}`);
      }
      if (/\brenameSync\(/.test(code) && rel !== 'src/archive/prefetch.ts' && rel !== 'src/sync/sync.ts') offenders.push(`${rel}: renameSync`);
    }
    expect(offenders).toEqual([]);
  });
});
