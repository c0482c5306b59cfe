/** Every subcommand, in the order `walship --help` lists them (the per-file ones first); a name with a space is a subcommand of a group. */
import type { CommandDef } from './options.js';
import { archiveFetch, archivePush } from './archive.js';
import { info } from './info.js';
import { backup, backups } from './backup.js';
import { ranges } from './ranges.js';
import { plan } from './plan.js';
import { restore } from './restore.js';
import { catalogRebuild, catalogSync } from './catalog.js';
import { expire } from './expire.js';
import { verify } from './verify.js';
import { status } from './status.js';
import { check } from './check.js';
import { drill } from './drill.js';
import { init } from './init.js';
import { agent } from './agent.js';

export const COMMANDS: readonly CommandDef[] = [archivePush, archiveFetch, info, backup, backups, ranges, plan, restore, catalogSync, catalogRebuild, expire, verify, status, check, drill, init, agent];

/** The groups of subcommands, and what `walship --help` says of each. */
export const GROUPS: Readonly<Record<string, string>> = {
  catalog: 'the local catalog, a cache of the repository: sync it, or rebuild it from the repository alone',
};
