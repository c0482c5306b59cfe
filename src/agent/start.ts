/**
 * Starting the agent on demand: a call PostgreSQL made (its working directory is a data
 * directory) that ran in node starts one for that data directory when none is alive and the
 * client is built, with the call's own setting flags and environment: the agent then answers
 * the calls made with exactly those. Never fails the call; costs a few system calls when an
 * agent is alive.
 */
import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { lockHolderAlive, startDetached } from '../archive/background.js';
import { privateDir } from '../local/private.js';
import { AGENT_LOCK, AGENT_LOG, agentDir } from './place.js';

export async function ensureAgent(flagArgs: readonly string[]): Promise<void> {
  try {
    if (process.platform !== 'linux' || process.env.WALSHIP_AGENT === 'off') return;
    if (!existsSync(new URL('../walship-client', import.meta.url))) return;
    const cwd = realpathSync(process.cwd());
    if (!existsSync(join(cwd, 'PG_VERSION'))) return;
    const dir = agentDir(cwd);
    if (existsSync(dir) && (await lockHolderAlive(dir, AGENT_LOCK))) return;
    if (privateDir(dir, { create: true }).state !== 'ok') return;
    await startDetached(['agent', '--pgdata', cwd, ...flagArgs], join(dir, AGENT_LOG), 'agent');
  } catch {
    /* the call is answered; the next one tries again */
  }
}
