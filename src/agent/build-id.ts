/** The build's id (dist/build-id, written by `npm run build` and compiled into the client): a client and an agent of different builds never talk. */
import { readFileSync } from 'node:fs';

export function buildId(): string | null {
  try {
    const id = readFileSync(new URL('../build-id', import.meta.url), 'utf8').trim();
    return /^[0-9a-f]{16,64}$/.test(id) ? id : null;
  } catch {
    return null;
  }
}
