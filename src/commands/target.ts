/**
 * The recovery target options that `plan`, `restore` and `drill` share, and their parsing: exactly
 * one target, each value checked, as PostgreSQL would take it.
 */
import type { Command } from 'commander';
import { WalshipError } from '../errors.js';
import { parseLsn } from '../wal/names.js';
import { parseTargetTime } from '../time.js';
import type { Target } from '../recovery/plan.js';
import type { Flags } from './options.js';

/** The recovery target options. */
export function addTargetOptions(cmd: Command, defaultNote: string): Command {
  return cmd
    .option('--target-time <time>', 'recover to this time: ISO 8601 with a UTC offset, e.g. 2026-11-24T11:08:25.5+01:00')
    .option('--target-name <name>', 'recover to this restore point (pg_create_restore_point)')
    .option('--target-lsn <lsn>', 'recover to this WAL location, e.g. 0/3000028')
    .option('--target-xid <xid>', 'recover to the commit or abort of this transaction')
    .option('--target <which>', `immediate (a backup's consistency point) or latest (the end of the archive)${defaultNote}`)
    .option('--target-timeline <n>', 'recover along this timeline (default: the newest one that reaches the target)')
    .option('--exclusive', 'stop just before the target (recovery_target_inclusive = off)');
}

function usage(msg: string): WalshipError {
  return new WalshipError('USAGE', `${msg} (see walship plan --help)`);
}

/** The one target the flags name; USAGE error for none, several or a malformed one. */
export function targetFromFlags(flags: Flags): Target {
  const given: Target[] = [];
  if (typeof flags.targetTime === 'string') {
    const r = parseTargetTime(flags.targetTime);
    if ('error' in r) throw usage(`--target-time: ${r.error}`);
    given.push({ type: 'time', time: r.micros });
  }
  if (typeof flags.targetName === 'string') {
    if (flags.targetName === '' || Buffer.byteLength(flags.targetName) > 63) throw usage('--target-name must be 1 to 63 bytes, as PostgreSQL restore point names are');
    given.push({ type: 'name', name: flags.targetName });
  }
  if (typeof flags.targetLsn === 'string') {
    const lsn = parseLsn(flags.targetLsn);
    if (lsn === null) throw usage(`--target-lsn: "${flags.targetLsn}" is not an LSN (write it as PostgreSQL does, e.g. 0/3000028)`);
    given.push({ type: 'lsn', lsn });
  }
  if (typeof flags.targetXid === 'string') {
    if (!/^\d+$/.test(flags.targetXid) || Number(flags.targetXid) < 3 || Number(flags.targetXid) > 0xffffffff) {
      throw usage(`--target-xid: "${flags.targetXid}" is not a transaction id (a whole number from 3 to 4294967295)`);
    }
    given.push({ type: 'xid', xid: Number(flags.targetXid) });
  }
  if (typeof flags.target === 'string') {
    if (flags.target !== 'immediate' && flags.target !== 'latest') throw usage(`--target must be immediate or latest, not "${flags.target}"`);
    given.push({ type: flags.target });
  }
  if (given.length === 0) throw usage('give a target: --target-time, --target-name, --target-lsn, --target-xid or --target immediate|latest');
  if (given.length > 1) throw usage('give only one target (PostgreSQL accepts a single recovery_target_* setting)');
  const t = given[0]!;
  if (flags.exclusive && (t.type === 'name' || t.type === 'immediate' || t.type === 'latest')) {
    throw usage(`--exclusive applies to time, LSN and xid targets only, not to --target${t.type === 'name' ? '-name' : ` ${t.type}`}`);
  }
  return t;
}

/** --target-timeline, when given; USAGE error for anything but a timeline number. */
export function timelineFromFlags(flags: Flags): number | undefined {
  if (typeof flags.targetTimeline !== 'string') return undefined;
  if (!/^\d+$/.test(flags.targetTimeline) || Number(flags.targetTimeline) < 1) throw usage(`--target-timeline must be a timeline number, not "${flags.targetTimeline}"`);
  return Number(flags.targetTimeline);
}


/** The flags that name a target. */
export const TARGET_FLAGS = ['targetTime', 'targetName', 'targetLsn', 'targetXid', 'target'] as const;

/** The target the flags name, or `fallback` when they name none. */
export function targetOrDefault(flags: Flags, fallback: Target): Target {
  return TARGET_FLAGS.some((k) => typeof flags[k] === 'string') ? targetFromFlags(flags) : fallback;
}
