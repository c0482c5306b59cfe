import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfigText, parseDuration, parseSize, resolveConfig, requireRepo, SETTINGS, unknownVariables } from '../src/config.js';
import { ExitCode, WalshipError, exitCodeFor } from '../src/errors.js';
import { parseRepoUrl } from '../src/storage/open.js';
import { VERSION } from '../src/version.js';

describe('config', () => {
  it('parses postgresql.conf-style text', () => {
    const m = parseConfigText("# c\nrepo = '/var/lib/walship/it''s'  # trailing\ncompress-level=3\nlog_level info\n\n", 'f');
    expect(Object.fromEntries(m)).toEqual({ repo: "/var/lib/walship/it's", compress_level: '3', log_level: 'info' });
    expect(() => parseConfigText("repo = 'open\n", 'f.conf')).toThrow(/f.conf:1: unterminated/);
    expect(() => parseConfigText('rpeo = /x\n', 'f.conf')).toThrow(/f.conf:1: unknown setting "rpeo"/);
    expect(() => parseConfigText('= x\n', 'f.conf')).toThrow(/f.conf:1: expected "key = value"/);
  });

  it('names the WALSHIP_* variables that are no setting, and the setting a typo resembles', () => {
    const env = { WALSHIP_COMPRES_LEVEL: '3', WALSHIP_REPO: '/r', WALSHIP_CONFIG: '/dev/null', WALSHIP_SOMETHING_ELSE: 'x', WALSHIP_FETCH_PREFECH: '2', PATH: '/bin' };
    expect(unknownVariables(env)).toEqual([
      { name: 'WALSHIP_COMPRES_LEVEL', resembles: 'WALSHIP_COMPRESS_LEVEL' },
      { name: 'WALSHIP_FETCH_PREFECH', resembles: 'WALSHIP_FETCH_PREFETCH' },
      { name: 'WALSHIP_SOMETHING_ELSE' },
    ]);
    expect(() => parseConfigText('compres_level = 3\n', 'f.conf')).toThrow(/f.conf:1: unknown setting "compres_level" \(did you mean compress_level\?\)/);
  });

  it('resolves flag > env > file > default', () => {
    const dir = mkdtempSync(join(tmpdir(), 'walship-cfg-'));
    const file = join(dir, 'w.conf');
    writeFileSync(file, 'repo = /from/file\ncompress_level = 5\nlog_level = debug\n');
    const cfg = resolveConfig({
      flags: { repo: '/from/flag' },
      configPath: file,
      env: { WALSHIP_COMPRESS_LEVEL: '7', WALSHIP_REPO: '/from/env' },
    });
    expect(cfg.repo).toBe('/from/flag');
    expect(cfg.compress_level).toBe(7);
    expect(cfg.log_level).toBe('debug');
    expect(cfg.fetch_on_error).toBe('auto');
    expect(cfg.configFile).toBe(file);
    // A config file named explicitly must exist.
    expect(() => resolveConfig({ flags: {}, env: { WALSHIP_CONFIG: join(dir, 'absent.conf') } })).toThrow(/absent.conf: ENOENT/);
  });

  it('rejects bad values naming the setting and where it came from', () => {
    expect(() => resolveConfig({ flags: { compress_level: '99' }, env: { WALSHIP_CONFIG: '/dev/null' } })).toThrow(/invalid compress_level = '99' \(--compress-level\): expected 1 to 19/);
    expect(() => resolveConfig({ flags: {}, env: { WALSHIP_CONFIG: '/dev/null', WALSHIP_FETCH_ON_ERROR: 'ignore' } })).toThrow(/WALSHIP_FETCH_ON_ERROR.*expected one of auto, abort, retry/);
    expect(() => resolveConfig({ flags: {}, configPath: '/nonexistent/walship.conf', env: {} })).toThrow(/cannot read config file \/nonexistent\/walship.conf: ENOENT/);
    const cfg = resolveConfig({ flags: {}, env: { WALSHIP_CONFIG: '/dev/null' } });
    expect(() => requireRepo(cfg)).toThrow(/no repository configured/);
  });

  it('reads durations with a unit, and refuses anything else in one line', () => {
    const cfg = resolveConfig({ flags: { retain_window: '14d', retain_incomplete: '36h' }, env: { WALSHIP_CONFIG: '/dev/null' } });
    expect(cfg.retain_window).toBe(14 * 86400);
    expect(cfg.retain_incomplete).toBe(36 * 3600);
    expect(resolveConfig({ flags: {}, env: { WALSHIP_CONFIG: '/dev/null' } }).retain_incomplete).toBe(7 * 86400);
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration('30min')).toBe(1800);
    expect(parseDuration('2w')).toBe(14 * 86400);
    for (const bad of ['14', '14 days', '0d', '-1d', '1.5h']) expect(parseDuration(bad), bad).toBeNull();
    expect(() => resolveConfig({ flags: { retain_window: '14 days' }, env: { WALSHIP_CONFIG: '/dev/null' } })).toThrow(
      /invalid retain_window = '14 days' \(.*\): expected a duration such as 36h, 14d or 2w/,
    );
  });

  it('reads sizes in units of 1024, off by default, and refuses anything else in one line', () => {
    const env = { WALSHIP_CONFIG: '/dev/null' };
    expect(resolveConfig({ flags: {}, env }).push_queue_max).toBeUndefined();
    expect(resolveConfig({ flags: { push_queue_max: '64GB' }, env }).push_queue_max).toBe(64 * 1024 ** 3);
    expect(resolveConfig({ flags: { push_queue_max: 'off' }, env }).push_queue_max).toBeUndefined();
    expect(parseSize('512MB')).toBe(512 * 1024 ** 2);
    expect(parseSize('16 kB')).toBe(16 * 1024);
    expect(parseSize('1TiB')).toBe(1024 ** 4);
    expect(parseSize('100B')).toBe(100);
    for (const bad of ['64', '64 G', '0MB', '1.5GB', '-1MB', 'lots']) expect(parseSize(bad), bad).toBeNull();
    expect(() => resolveConfig({ flags: { push_queue_max: '64' }, env })).toThrow(/invalid push_queue_max = '64' \(.*\): expected a size such as 512MB/);
  });

  it('documents every setting in docs/configuration.md', () => {
    const doc = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');
    for (const s of SETTINGS) expect(doc, s.key).toContain(`\`${s.key}\``);
  });
});

describe('repository URLs', () => {
  it('accepts absolute paths, file:// and s3:// URLs', () => {
    expect(parseRepoUrl('/var/lib/walship/')).toMatchObject({ kind: 'fs', path: '/var/lib/walship', canonical: 'file:///var/lib/walship' });
    expect(parseRepoUrl('file:///srv/wal')).toMatchObject({ kind: 'fs', path: '/srv/wal' });
    expect(parseRepoUrl('s3://my-bucket/db1/wal/')).toMatchObject({ kind: 's3', bucket: 'my-bucket', prefix: 'db1/wal', canonical: 's3://my-bucket/db1/wal' });
    expect(() => parseRepoUrl('relative/dir')).toThrow(/must be absolute/);
    expect(() => parseRepoUrl('gs://x/y')).toThrow(/supported are/);
    expect(() => parseRepoUrl('s3://Bad_Bucket')).toThrow(/not a valid S3 bucket name/);
  });
});

describe('exit codes', () => {
  it('maps archive-fetch failures by policy and keeps 1 for "not in the archive" only', () => {
    const missing = new WalshipError('NOT_IN_ARCHIVE', 'x');
    const corrupt = new WalshipError('OBJECT_CORRUPT', 'x');
    expect(exitCodeFor(missing, 'archive-fetch')).toBe(1);
    expect(exitCodeFor(corrupt, 'archive-fetch')).toBe(255);
    expect(exitCodeFor(new Error('boom'), 'archive-fetch')).toBe(255);
    expect(exitCodeFor(corrupt, 'archive-fetch', 'retry')).toBe(3);
    expect(exitCodeFor(corrupt, 'archive-push')).toBe(ExitCode.CORRUPT);
    expect(exitCodeFor(new WalshipError('WAL_CONFLICT', 'x'), 'archive-push')).toBe(4);
    // archive-push never uses codes above 125 (PostgreSQL would restart its archiver).
    for (const code of ['USAGE', 'NOT_WAL', 'WAL_CONFLICT', 'WRONG_CLUSTER', 'REPOSITORY_UNAVAILABLE', 'CATALOG_ERROR', 'INTERNAL'] as const) {
      expect(exitCodeFor(new WalshipError(code, 'x'), 'archive-push')).toBeLessThan(126);
    }
  });

  it('keeps the version in step with package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(VERSION).toBe(pkg.version);
  });
});
