/**
 * Settings: one table describes every setting; each is read from the command line, the
 * environment, the config file, or its default, in that order of precedence.
 *
 * The config file is postgresql.conf-style: `key = value`, `#` comments, values optionally in
 * single quotes ('' for a quote inside). Keys use underscores; the matching flag uses dashes
 * (`compress_level` ↔ `--compress-level`) and the variable is WALSHIP_ + the key in capitals.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { WalshipError } from './errors.js';

export const DEFAULT_CONFIG_PATH = '/etc/walship/walship.conf';

type Kind = 'string' | 'int' | 'bool' | 'enum' | 'duration' | 'size';

export interface SettingDef {
  key: string;
  kind: Kind;
  description: string;
  values?: readonly string[];
  min?: number;
  max?: number;
  /** Default as text; undefined = no default (the setting is required where it is used). */
  default?: () => string | undefined;
}

export const SETTINGS = [
  {
    key: 'repo',
    kind: 'string',
    description: 'Repository URL: an absolute path, file:///abs/path, or s3://bucket/prefix.',
  },
  {
    key: 'catalog',
    kind: 'string',
    description: 'Path of the local SQLite catalog.',
    default: () => join(process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'walship', 'catalog.db'),
  },
  {
    key: 'compress_level',
    kind: 'int',
    min: 1,
    max: 19,
    description: 'zstd compression level for archived WAL (1 = fastest).',
    default: () => '1',
  },
  {
    key: 'fetch_on_error',
    kind: 'enum',
    values: ['auto', 'abort', 'retry'],
    description:
      'What archive-fetch exits with on a failure other than "not in the archive": auto = 3 in standby mode (standby.signal in the data directory: PostgreSQL retries and keeps streaming), else 255; abort = 255, recovery stops; retry = 3, PostgreSQL treats the file as unavailable.',
    default: () => 'auto',
  },
  {
    key: 'log_level',
    kind: 'enum',
    values: ['error', 'warn', 'info', 'debug'],
    description: 'Least severe log level written to stderr.',
    default: () => 'info',
  },
  {
    key: 'log_format',
    kind: 'enum',
    values: ['text', 'json'],
    description: 'Log line format on stderr: text (key=value) or json (one object per line).',
    default: () => 'text',
  },
  {
    key: 'pg_host',
    kind: 'string',
    description: 'walship backup: server host or unix-socket directory (else PGHOST, else the libpq default).',
  },
  {
    key: 'pg_port',
    kind: 'int',
    min: 1,
    max: 65535,
    description: 'walship backup: server port (else PGPORT, else 5432).',
  },
  {
    key: 'pg_user',
    kind: 'string',
    description: 'walship backup: role to connect as, a superuser or one with the backup privileges (else PGUSER, else the OS user).',
  },
  {
    key: 'pg_bin',
    kind: 'string',
    description:
      "walship drill: directory of the PostgreSQL server programs (postgres) of the backup's major version (else pg_config's, /usr/lib/postgresql/N/bin or /usr/pgsql-N/bin).",
  },
  {
    key: 'pg_database',
    kind: 'string',
    description: 'walship backup: database to connect to (else PGDATABASE, else postgres).',
  },
  {
    key: 's3_endpoint',
    kind: 'string',
    description: 'S3 endpoint URL for S3-compatible stores (MinIO, Ceph, R2, ...); empty = AWS.',
  },
  {
    key: 's3_region',
    kind: 'string',
    description: 'S3 region.',
    default: () => process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1',
  },
  {
    key: 's3_force_path_style',
    kind: 'bool',
    description: 'Path-style addressing (bucket in the path, as most S3-compatible stores want).',
    default: () => 'off',
  },
  {
    key: 's3_storage_class',
    kind: 'string',
    description: 'Storage class for new objects (STANDARD, STANDARD_IA, ...); empty = the bucket default.',
  },
  {
    key: 's3_sse',
    kind: 'enum',
    values: ['none', 'AES256', 'aws:kms'],
    description: 'Server-side encryption of new objects.',
    default: () => 'none',
  },
  {
    key: 's3_sse_kms_key_id',
    kind: 'string',
    description: 'KMS key id when s3_sse = aws:kms.',
  },
  {
    key: 's3_request_timeout',
    kind: 'int',
    min: 100,
    max: 3_600_000,
    description: 'Timeout of one S3 request attempt, in milliseconds.',
    default: () => '30000',
  },
  {
    key: 's3_max_retries',
    kind: 'int',
    min: 0,
    max: 20,
    description: 'Retries of a failed S3 request (throttling, 5xx, connection errors), with backoff.',
    default: () => '4',
  },
  {
    key: 'push_readahead',
    kind: 'int',
    min: 0,
    max: 1000,
    description:
      'archive-push of a segment starts a background pusher that keeps up to this many .ready segments pushed ahead of PostgreSQL, so its calls for them return at once (0 = off).',
    default: () => '16',
  },
  {
    key: 'fetch_prefetch',
    kind: 'int',
    min: 0,
    max: 1000,
    description:
      'archive-fetch of a segment starts a background prefetcher that keeps up to this many following segments verified in a spool directory (0 = off).',
    default: () => '16',
  },
  {
    key: 'spool_dir',
    kind: 'string',
    description:
      'Directory for prefetched segments; must be on the filesystem of pg_wal, outside it. Default: walship-spool-<hash> beside the data directory.',
  },
  {
    key: 'spool_max_bytes',
    kind: 'int',
    min: 1_048_576,
    max: 1_099_511_627_776,
    description: 'Most bytes of prefetched segments kept in the spool directory.',
    default: () => '1073741824',
  },
  {
    key: 'retain_full',
    kind: 'int',
    min: 1,
    max: 100_000,
    description: 'walship expire: keep the newest N restorable backups (and everything newer), with the WAL they need.',
  },
  {
    key: 'retain_window',
    kind: 'duration',
    description:
      'walship expire: keep everything needed to recover to any moment of this recent past (e.g. 14d): the newest backup consistent before it, and all newer.',
  },
  {
    key: 'retain_wal_before_oldest',
    kind: 'bool',
    description: 'walship expire: keep the WAL older than the oldest kept backup (off: it is removed; no kept window needs it).',
    default: () => 'off',
  },
  {
    key: 'retain_incomplete',
    kind: 'duration',
    description: 'walship expire: failed and unfinished backups are removed once they started longer ago than this.',
    default: () => '7d',
  },
  {
    key: 'memory_max',
    kind: 'size',
    description:
      "Most memory walship's processes for one cluster hold while they push ahead or prefetch: 256 MiB for the processes themselves, the rest for the files in flight (twice its size for a file read whole, about 14 MiB for one read in pieces, 46 MiB to S3; about 26 MiB for a fetch); fewer files go at once when they would not fit, never none. Off: only push_readahead and the fixed counts bound them.",
    default: () => '512MB',
  },
  {
    key: 'push_queue_max',
    kind: 'size',
    description:
      'archive-push: when the repository cannot be reached or written and more than this much WAL waits in pg_wal (.ready segments), acknowledge the segment WITHOUT archiving it and record the gap (default off: PostgreSQL keeps the WAL until the archive is back, and pg_wal grows).',
  },
  {
    key: 'status_archive_lag_warn',
    kind: 'duration',
    description: 'walship status: warn when the newest archived transaction is older than this (an idle database warns too).',
    default: () => '15min',
  },
  {
    key: 'status_archive_lag_crit',
    kind: 'duration',
    description: 'walship status: critical when the newest archived transaction is older than this.',
    default: () => '1h',
  },
  {
    key: 'status_backup_age_warn',
    kind: 'duration',
    description: 'walship status: warn when the newest restorable backup completed longer ago than this.',
    default: () => '26h',
  },
  {
    key: 'status_backup_age_crit',
    kind: 'duration',
    description: 'walship status: critical when the newest restorable backup completed longer ago than this.',
    default: () => '50h',
  },
  {
    key: 'status_verify_age_warn',
    kind: 'duration',
    description: 'walship status: warn when walship verify last ran longer ago than this.',
    default: () => '8d',
  },
  {
    key: 'status_drill_age_warn',
    kind: 'duration',
    description: 'walship status: warn when the last walship drill ran longer ago than this (a failed last drill is critical).',
    default: () => '8d',
  },
] as const satisfies readonly SettingDef[];

export type SettingKey = (typeof SETTINGS)[number]['key'];

export interface Config {
  repo?: string;
  catalog: string;
  compress_level: number;
  fetch_on_error: 'auto' | 'abort' | 'retry';
  log_level: 'error' | 'warn' | 'info' | 'debug';
  log_format: 'text' | 'json';
  pg_host?: string;
  pg_port?: number;
  pg_user?: string;
  pg_bin?: string;
  pg_database?: string;
  s3_endpoint?: string;
  s3_region: string;
  s3_force_path_style: boolean;
  s3_storage_class?: string;
  s3_sse: 'none' | 'AES256' | 'aws:kms';
  s3_sse_kms_key_id?: string;
  s3_request_timeout: number;
  s3_max_retries: number;
  push_readahead: number;
  fetch_prefetch: number;
  spool_dir?: string;
  spool_max_bytes: number;
  retain_full?: number;
  /** Seconds. */
  retain_window?: number;
  retain_wal_before_oldest: boolean;
  /** Seconds. */
  retain_incomplete: number;
  /** Bytes; unset: off. */
  memory_max?: number;
  /** Bytes; unset: off. */
  push_queue_max?: number;
  /** Seconds, all six. */
  status_archive_lag_warn: number;
  status_archive_lag_crit: number;
  status_backup_age_warn: number;
  status_backup_age_crit: number;
  status_verify_age_warn: number;
  status_drill_age_warn: number;
  /** Where the config file came from, if one was read. */
  configFile?: string;
  /**
   * The config file's path as looked up (read or not) and its state when read: "absent", or
   * "dev ino size mtime_ns ctime_ns" of the file taken before reading it (so any later change
   * shows). The agent compares it (src/agent/agent.ts) to answer only calls with its own settings.
   */
  configStamp: { path: string; state: string };
}

/**
 * WALSHIP_* variables that are not settings: walship's own switches (WALSHIP_CONFIG, the stack
 * traces of WALSHIP_DEBUG, WALSHIP_CRC32C=js), and those its test suite and scripts read.
 */
const OTHER_VARIABLES: ReadonlySet<string> = new Set([
  'WALSHIP_CONFIG',
  'WALSHIP_DEBUG',
  'WALSHIP_CRC32C',
  'WALSHIP_AGENT',
  'WALSHIP_CLIENT_FALLBACK',
  'WALSHIP_TEST_BACKENDS',
  'WALSHIP_MATRIX_MAJOR',
  'WALSHIP_MATRIX_CACHE',
]);

/** Edit distance (insertions, deletions, substitutions) between two short strings. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** The setting key `key` is most likely a typo of, if one is close enough. */
export function resemblingSetting(key: string): string | undefined {
  let best: { key: string; d: number } | undefined;
  for (const def of SETTINGS) {
    const d = distance(key.toLowerCase(), def.key);
    if (!best || d < best.d) best = { key: def.key, d };
  }
  return best && best.d <= Math.max(2, Math.floor(best.key.length / 4)) ? best.key : undefined;
}

/**
 * The WALSHIP_* variables of `env` that name no setting (a typo is otherwise silently ignored),
 * each with the setting's variable it resembles, when one does.
 */
export function unknownVariables(env: NodeJS.ProcessEnv): { name: string; resembles?: string }[] {
  const known = new Set(SETTINGS.map((d) => envName(d.key)));
  return Object.keys(env)
    .filter((k) => k.startsWith('WALSHIP_') && !known.has(k) && !OTHER_VARIABLES.has(k))
    .sort()
    .map((name) => {
      const key = resemblingSetting(name.slice('WALSHIP_'.length));
      return key === undefined ? { name } : { name, resembles: envName(key) };
    });
}

export function flagName(key: string): string {
  return key.replace(/_/g, '-');
}
export function envName(key: string): string {
  return `WALSHIP_${key.toUpperCase()}`;
}

/** Parses postgresql.conf-style text. Throws CONFIG_INVALID naming the file and line. */
export function parseConfigText(text: string, source: string): Map<string, string> {
  const out = new Map<string, string>();
  const known = new Set<string>(SETTINGS.map((s) => s.key));
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const where = `${source}:${i + 1}`;
    const line = lines[i]!;
    const m = /^\s*([A-Za-z0-9_.-]+)\s*=?\s*(.*?)\s*$/.exec(stripComment(line));
    if (!m || m[1] === undefined) {
      if (stripComment(line).trim() === '') continue;
      throw new WalshipError('CONFIG_INVALID', `${where}: expected "key = value"`);
    }
    const key = m[1].replace(/-/g, '_').toLowerCase();
    if (!known.has(key)) {
      const like = resemblingSetting(key);
      throw new WalshipError('CONFIG_INVALID', `${where}: unknown setting "${m[1]}"${like ? ` (did you mean ${like}?)` : ''}`);
    }
    let value = m[2]!;
    if (value.startsWith("'")) {
      if (!/^'(?:[^']|'')*'$/.test(value)) throw new WalshipError('CONFIG_INVALID', `${where}: unterminated quoted value for ${key}`);
      value = value.slice(1, -1).replace(/''/g, "'");
    }
    out.set(key, value);
  }
  return out;
}

function stripComment(line: string): string {
  let inQuote = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "'") inQuote = !inQuote;
    else if (c === '#' && !inQuote) return line.slice(0, i);
  }
  return line;
}

function coerce(def: SettingDef, raw: string, source: string): unknown {
  const bad = (why: string) => new WalshipError('CONFIG_INVALID', `invalid ${def.key} = '${raw}' (${source}): ${why}`);
  switch (def.kind) {
    case 'string':
      return raw === '' ? undefined : raw;
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) throw bad('expected a whole number');
      const n = Number(raw);
      if ((def.min !== undefined && n < def.min) || (def.max !== undefined && n > def.max)) {
        throw bad(`expected ${def.min} to ${def.max}`);
      }
      return n;
    }
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['on', 'true', 'yes', '1'].includes(v)) return true;
      if (['off', 'false', 'no', '0'].includes(v)) return false;
      throw bad('expected on or off');
    }
    case 'enum':
      if (!def.values!.includes(raw)) throw bad(`expected one of ${def.values!.join(', ')}`);
      return raw;
    case 'size': {
      if (raw.trim() === '' || raw.trim().toLowerCase() === 'off') return undefined;
      const bytes = parseSize(raw);
      if (bytes === null) throw bad('expected a size such as 512MB, 8GB or 1TB (units B, kB, MB, GB, TB, of 1024), or off');
      return bytes;
    }
    case 'duration': {
      if (raw.trim() === '') return undefined;
      const seconds = parseDuration(raw);
      if (seconds === null) throw bad('expected a duration such as 36h, 14d or 2w (units s, min, h, d, w)');
      return seconds;
    }
  }
}

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };

/** Bytes in a size such as `512MB` or `8GB` (units of 1024, as PostgreSQL's); null when it is none. */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+)\s*([a-z]+)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return null;
  const n = Number(m[1]) * unit;
  return n > 0 && Number.isSafeInteger(n) ? n : null;
}

const DURATION_UNITS: Record<string, number> = { s: 1, min: 60, h: 3600, d: 86400, w: 7 * 86400 };

/** Seconds in a duration such as `90s`, `30min`, `36h`, `14d`, `2w`; null when it is none. */
export function parseDuration(text: string): number | null {
  const m = /^\s*(\d+)\s*(s|min|h|d|w)\s*$/.exec(text);
  if (!m) return null;
  const n = Number(m[1]) * DURATION_UNITS[m[2]!]!;
  return n > 0 && Number.isSafeInteger(n) ? n : null;
}

/** A duration setting as written in the config file: its largest whole unit (`14d`, `36h`). */
export function formatDurationSetting(seconds: number): string {
  for (const [unit, n] of Object.entries(DURATION_UNITS).reverse()) if (seconds % n === 0) return `${seconds / n}${unit}`;
  return `${seconds}s`;
}

export interface ResolveInput {
  /** Values from the command line, keyed by setting key (underscore form). */
  flags: Partial<Record<string, string | undefined>>;
  /** Explicit --config path. */
  configPath?: string;
  env?: NodeJS.ProcessEnv;
}

/** Resolves every setting: flag > env > config file > default. */
export function resolveConfig(input: ResolveInput): Config {
  const env = input.env ?? process.env;
  const explicitPath = input.configPath ?? (env.WALSHIP_CONFIG || undefined);
  const path = explicitPath ?? DEFAULT_CONFIG_PATH;
  let fileValues = new Map<string, string>();
  let configFile: string | undefined;
  let text: string | undefined;
  let state = 'absent';
  try {
    const fd = openSync(path, 'r');
    try {
      const st = fstatSync(fd, { bigint: true });
      state = `${st.dev} ${st.ino} ${st.size} ${st.mtimeNs} ${st.ctimeNs}`;
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (explicitPath !== undefined || code !== 'ENOENT') {
      throw new WalshipError('CONFIG_INVALID', `cannot read config file ${path}: ${code ?? String(err)}`);
    }
  }
  if (text !== undefined) {
    fileValues = parseConfigText(text, path);
    configFile = path;
  }
  const out: Record<string, unknown> = { configFile, configStamp: { path, state } };
  for (const def of SETTINGS as readonly SettingDef[]) {
    const fromFlag = input.flags[def.key];
    const fromEnv = env[envName(def.key)];
    let raw: string | undefined;
    let source: string;
    if (fromFlag !== undefined) {
      raw = fromFlag;
      source = `--${flagName(def.key)}`;
    } else if (fromEnv !== undefined && fromEnv !== '') {
      raw = fromEnv;
      source = envName(def.key);
    } else if (fileValues.has(def.key)) {
      raw = fileValues.get(def.key);
      source = configFile!;
    } else {
      raw = def.default?.();
      source = 'default';
    }
    out[def.key] = raw === undefined ? undefined : coerce(def, raw, source);
  }
  return out as unknown as Config;
}

/** The repository URL, or CONFIG_MISSING naming every way to set it. */
export function requireRepo(cfg: Config): string {
  if (!cfg.repo) {
    throw new WalshipError(
      'CONFIG_MISSING',
      `no repository configured: pass --repo, set ${envName('repo')}, or put "repo = ..." in ${cfg.configFile ?? DEFAULT_CONFIG_PATH}`,
    );
  }
  return cfg.repo;
}
