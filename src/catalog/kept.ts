/**
 * A catalog connection a long-lived process keeps open (the pusher's lanes, the agent), so that
 * a push does not pay for opening and closing one (a checkpoint of SQLite's WAL each time). It is
 * opened again when the file at the catalog's path is no longer the one it has open: an operator
 * who removes the catalog, or puts another in its place, never has pushes indexed into the old.
 */
import { statSync } from 'node:fs';
import { Catalog } from './catalog.js';

const fileId = (path: string): string => {
  const st = statSync(path, { throwIfNoEntry: false });
  return st ? `${st.dev}:${st.ino}` : '';
};

export class KeptCatalog {
  private cat: Catalog | null = null;
  private id = '';

  constructor(readonly path: string) {}

  get(): Catalog {
    if (this.cat && fileId(this.path) === this.id) return this.cat;
    this.close();
    this.cat = Catalog.open(this.path)!;
    this.id = fileId(this.path);
    return this.cat;
  }

  close(): void {
    this.cat?.close();
    this.cat = null;
  }
}
