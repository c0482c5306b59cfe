/**
 * Starting the agent on demand: a call PostgreSQL made (its working directory is a data
 * directory) that ran in node starts one for that data directory when none is alive and the
 * client is built, with the call's own setting flags and environment: the agent then answers
 * the calls made with exactly those. A call that would start the background pusher hands it to
 * the agent it starts instead (commands/archive.ts). Never fails the call; costs a few system
 * calls when an agent is alive.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { lockHolderAlive, startDetached } from '../archive/background.js';
import { writeFileAtomic } from '../local/atomic-write.js';
import { privateDir, readPrivateFile } from '../local/private.js';
import { processAlive } from '../pid.js';
import { AGENT_LOCK, AGENT_LOG, AGENT_STARTING, CLIENT_FALLBACK, agentDir } from './place.js';

/** An agent a call started counts as on its way while its pid lives, for this long. */
const STARTING_MS = 10_000;

/**
 * What ensureAgent found or did: an agent alive (this call came to node all the same), one this
 * call started (`spawned`: with the helper it was handed), one on its way, or none to be had.
 */
export type AgentState = 'alive' | 'spawned' | 'starting' | 'none';

let outcome: Promise<AgentState> | undefined;

/**
 * Why the client handed this call to node (CLIENT_FALLBACK), taken out of the environment the
 * helpers and the agent are started with: `absent` (no agent listened when it tried), `declined`,
 * or undefined (not through the client).
 */
const fallback = process.env[CLIENT_FALLBACK];
delete process.env[CLIENT_FALLBACK];

/**
 * At most once per process: the state, starting an agent when none is alive or on its way.
 * `helper`: the agent's flags for the background helper this call would start (agent.ts runs it
 * as soon as it listens), so that the agent runs it from the first call on.
 */
export function ensureAgent(flagArgs: readonly string[], helper: readonly string[] = []): Promise<AgentState> {
  outcome ??= startIfNone(flagArgs, helper);
  return outcome;
}

async function startIfNone(flagArgs: readonly string[], helper: readonly string[]): Promise<AgentState> {
  try {
    if (process.platform !== 'linux' || process.env.WALSHIP_AGENT === 'off') return 'none';
    if (!existsSync(new URL('../walship-client', import.meta.url))) return 'none';
    const cwd = realpathSync(process.cwd());
    if (!existsSync(join(cwd, 'PG_VERSION'))) return 'none';
    const dir = agentDir(cwd);
    // Alive, yet this call came to node: it declined the call (then the call's helpers run here),
    // or it began to listen after the client tried (it runs them for the next calls).
    if (existsSync(dir) && (await lockHolderAlive(dir, AGENT_LOCK))) return fallback === 'absent' ? 'starting' : 'alive';
    if (privateDir(dir, { create: true }).state !== 'ok') return 'none';
    if (starting(dir)) return 'starting';
    const pid = await startDetached(['agent', '--pgdata', cwd, ...helper, ...flagArgs], join(dir, AGENT_LOG), 'agent');
    if (pid === undefined) return 'none';
    await writeFileAtomic(join(dir, AGENT_STARTING), String(pid)).catch(() => undefined);
    return 'spawned';
  } catch {
    return 'none'; // the call is answered; the next one tries again
  }
}

/** Whether an agent a call started lately is still on its way (its pid alive). */
function starting(dir: string): boolean {
  try {
    const path = join(dir, AGENT_STARTING);
    if (Date.now() - statSync(path).mtimeMs > STARTING_MS) return false;
    const pid = Number(readPrivateFile(path));
    return Number.isInteger(pid) && pid > 0 && processAlive(pid);
  } catch {
    return false;
  }
}
