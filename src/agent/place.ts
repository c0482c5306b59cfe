/**
 * Where a data directory's agent listens: `walship-agent.<name>/agent.sock` beside the data
 * directory `<parent>/<name>` (its real path, as PostgreSQL's working directory is), in a
 * private directory (0700) only the cluster's OS user can enter. The client
 * (src/client/walship-client.c) derives the same path from its working directory, nothing else.
 */
import { basename, dirname, join } from 'node:path';

export const AGENT_SOCKET = 'agent.sock';
export const AGENT_LOCK = 'agent.lock';
export const AGENT_LOG = 'agent.log';
/** Written by the call that starts an agent, with the agent's pid; removed by the agent once it listens. */
export const AGENT_STARTING = 'agent.starting';
/** Set by the client on a call it hands to node: why (`absent`: no agent listened; `declined`). */
export const CLIENT_FALLBACK = 'WALSHIP_CLIENT_FALLBACK';
/** A unix socket's path is at most this long (sun_path, with its terminating NUL). */
export const SOCKET_PATH_MAX = 107;

/** The agent's directory for the data directory at real path `pgdata`. */
export function agentDir(pgdata: string): string {
  return join(dirname(pgdata), `walship-agent.${basename(pgdata)}`);
}

/**
 * The variables a call forwards to the agent, and that must equal the agent's own for it to
 * answer: every one walship's settings and the S3 SDK read (settings, credentials, the default
 * catalog's place), and libpq's.
 */
export function forwardedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && isForwarded(k)) out[k] = v;
  return out;
}

export function isForwarded(name: string): boolean {
  // (walship sets the SDK's warning switch itself, storage/s3.ts: no setting of the call's.)
  if (name === 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED') return false;
  // (the client's word to node on a call it hands over, agent/start.ts: no setting either.)
  if (name === CLIENT_FALLBACK) return false;
  return name.startsWith('WALSHIP_') || name.startsWith('AWS_') || name.startsWith('PG') || name === 'HOME' || name === 'XDG_STATE_HOME';
}
