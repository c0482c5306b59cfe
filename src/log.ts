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

export function configureLog(opts: { level?: LogLevel; format?: LogFormat; command?: string }): void {
  if (opts.level) threshold = opts.level;
  if (opts.format) format = opts.format;
  if (opts.command !== undefined) command = opts.command;
}

function quote(v: string): string {
  return /^[A-Za-z0-9_./:+@-]+$/.test(v) ? v : JSON.stringify(v);
}

export function formatLine(level: LogLevel, msg: string, fields: Fields = {}): string {
  if (format === 'json') {
    return JSON.stringify({ ts: new Date().toISOString(), level, cmd: command || undefined, msg, ...fields });
  }
  let line = `walship ${level.toUpperCase()}${command ? ` [${command}]` : ''} ${msg}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    line += ` ${k}=${quote(String(v))}`;
  }
  return line;
}

let sink: ((line: Buffer) => void) | null = null;

/** Sends every line to `to` instead of stderr, until called with null (the agent: a call's lines go back to its client). */
export function redirectLog(to: ((line: Buffer) => void) | null): void {
  sink = to;
}

export function log(level: LogLevel, msg: string, fields?: Fields): void {
  if (RANK[level] > RANK[threshold]) return;
  const line = Buffer.from(formatLine(level, msg, fields) + '\n');
  if (sink) {
    sink(line);
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
