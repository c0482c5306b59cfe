import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Whether a process with this pid exists (EPERM: it does, owned by another user). A zombie (it
 * exited, and its parent has not reaped it yet) does not count: it holds nothing any more.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return true; // no /proc: as kill says
  }
}

/**
 * Sends `first` to each process, waits up to 10 s for all to be gone, then SIGKILLs what is left
 * and waits up to 5 s more. Processes already gone are skipped.
 */
export async function stopProcesses(pids: readonly number[], first: NodeJS.Signals): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        /* gone */
      }
    }
  };
  const running = () => pids.some((pid) => processAlive(pid));
  signal(first);
  for (let i = 0; i < 100 && running(); i++) await sleep(100);
  if (!running()) return;
  signal('SIGKILL');
  for (let i = 0; i < 50 && running(); i++) await sleep(100);
}
