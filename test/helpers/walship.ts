/** Runs the built walship CLI as a real subprocess, through the installed command (as root or as the cluster user). */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WALSHIP_COMMAND, pgUser } from './pg.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function walship(args: string[], opts: { asUser?: boolean; env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const u = opts.asUser ? pgUser() : undefined;
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    // Tests never read the machine's config file unless they mean to.
    env.WALSHIP_CONFIG ??= '/dev/null';
    const child = spawn(WALSHIP_COMMAND, args, {
      cwd: opts.cwd ?? '/',
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(u && { uid: u.uid, gid: u.gid }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr }));
    child.stdin.on('error', () => undefined); // the child may exit without reading its input
    child.stdin.end(opts.input ?? '');
  });
}

/** Every file below `dir` (relative path → size and mtime), to prove nothing changed. */
export function snapshotTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const full = join(d, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(full, r);
      else {
        const st = statSync(full);
        out[r] = `${st.size}:${st.mtimeMs}`;
      }
    }
  };
  walk(dir, '');
  return out;
}
