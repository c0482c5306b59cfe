import { readFileSync } from 'node:fs';

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
