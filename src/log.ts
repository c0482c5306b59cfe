/**
 * Structured logs on stderr: `walship LEVEL msg key=value ...` (text) or one JSON object per line.
 * PostgreSQL copies an archive_command's stderr into its own log, so every line starts with
 * "walship" to be found there.
 */
import { writeSync } from 'node:fs';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'text' | 'json';
type Fields = Record<string, string | number | boolean | null | undefined>;

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

let threshold: LogLevel = 'info';
let format: LogFormat = 'text';
let command = '';

/**
 * Where the lines of one piece of work go and how they read: in the agent, each call's go back
 * to its client and its pusher's to the pusher's log, whatever runs beside them. `contextOf`
 * (set by the agent, from an AsyncLocalStorage) names the piece of work that is logging; without
 * one, lines go to stderr as configured.
 */
export interface LogContext {
  sink?: (line: Buffer) => void;
  level?: LogLevel;
  format?: LogFormat;
  command?: string;
}
let contextOf: () => LogContext | undefined = () => undefined;

export function useLogContexts(get: () => LogContext | undefined): void {
  contextOf = get;
}

/** Sets the level, format or command name: of the current log context, if there is one. */
export function configureLog(opts: { level?: LogLevel; format?: LogFormat; command?: string }): void {
  const c = contextOf();
  if (opts.level) c ? (c.level = opts.level) : (threshold = opts.level);
  if (opts.format) c ? (c.format = opts.format) : (format = opts.format);
  if (opts.command !== undefined) c ? (c.command = opts.command) : (command = opts.command);
}

function quote(v: string): string {
  return /^[A-Za-z0-9_./:+@-]+$/.test(v) ? v : JSON.stringify(v);
}

export function formatLine(level: LogLevel, msg: string, fields: Fields = {}): string {
  const c = contextOf();
  const cmd = c?.command ?? command;
  if ((c?.format ?? format) === 'json') {
    return JSON.stringify({ ts: new Date().toISOString(), level, cmd: cmd || undefined, msg, ...fields });
  }
  let line = `walship ${level.toUpperCase()}${cmd ? ` [${cmd}]` : ''} ${msg}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    line += ` ${k}=${quote(String(v))}`;
  }
  return line;
}

export function log(level: LogLevel, msg: string, fields?: Fields): void {
  const c = contextOf();
  if (RANK[level] > RANK[c?.level ?? threshold]) return;
  const line = Buffer.from(formatLine(level, msg, fields) + '\n');
  if (c?.sink) {
    c.sink(line);
    return;
  }
  // Straight to fd 2: creating process.stderr costs ~2 ms of every per-file call. The stream
  // takes over (with what is left of the line) when the descriptor would block (a non-blocking
  // pipe) or is not writable.
  let written = 0;
  if (!stderrStream) {
    try {
      while (written < line.length) written += writeSync(2, line, written);
      return;
    } catch {
      stderrStream = true;
    }
  }
  process.stderr.write(line.subarray(written));
}

let stderrStream = false;

export const logger = {
  error: (msg: string, f?: Fields) => log('error', msg, f),
  warn: (msg: string, f?: Fields) => log('warn', msg, f),
  info: (msg: string, f?: Fields) => log('info', msg, f),
  debug: (msg: string, f?: Fields) => log('debug', msg, f),
};
