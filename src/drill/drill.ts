/**
 * `walship drill`: proves a backup restores. Plans a recovery to a target (refusing one the plan
 * cannot reach, before anything is done), restores the backup into a private scratch directory,
 * recovers it with a throwaway server (server.ts), checks that it reached the point the plan
 * promised and that its data is sound (inspect.ts, judge.ts), measures each phase, removes the
 * scratch cluster (unless --keep) and records the result in the repository (record.ts).
 */
import { promises as fsp } from 'node:fs';
import { hostname, tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import type { Client } from 'pg';
import type { Config } from '../config.js';
import { WalshipError, asWalshipError, describeSystemError } from '../errors.js';
import { logger } from '../log.js';
import { Catalog } from '../catalog/catalog.js';
import { readBackup } from '../backup/read.js';
import { computeRanges } from '../recovery/ranges.js';
import { planRecovery, type Plan, type Target } from '../recovery/plan.js';
import { refusalLine } from '../recovery/plan-render.js';
import { restorableInput, restoreCommandFor } from '../recovery/restore-plan.js';
import { restoreBackup } from '../recovery/restore.js';
import { msToMicros } from '../time.js';
import { parseLsn } from '../wal/names.js';
import { syncCatalog, type RepoContext } from '../sync/sync.js';
import { cleanLeftovers, createScratch, freeBytes, markKept, removeScratch } from './scratch.js';
import { amcheckProgram, connectTo, serverBinDir, startServer, waitPromoted, type DrillServer } from './server.js';
import { countRows, databases, readReached, runAmcheck, runSqlChecks } from './inspect.js';
import { judgeReached, verdictOf, type Check } from './judge.js';
import { pickRandomTarget } from './target.js';
import { drillKey, storeDrill, type DrillRecord } from './record.js';

export interface DrillOptions {
  /** The target (from the flags), or 'random' for --random-target. */
  target: Target | 'random';
  timeline?: number;
  inclusive: boolean;
  backup?: string;
  /** Where the scratch directory is made (default: the system's temporary directory). */
  workdir?: string;
  checkSql?: { path: string; database: string };
  keep: boolean;
  timeoutMs: number;
  parallel: number;
  progress: boolean;
  random?: () => number;
}

export interface DrillReport extends DrillRecord {
  key: string;
  /** With --keep: where the cluster was left. */
  kept: { pgdata: string; socketDir: string; port: number } | null;
  leftoversRemoved: string[];
}

const MARGIN = 64 * 1024 * 1024;
const mib = (n: number) => `${(n / 1048576).toFixed(0)} MiB`;
const secondsSince = (t: number) => Math.round((Date.now() - t) / 10) / 100;

function say(opts: DrillOptions, line: string): void {
  if (opts.progress) process.stderr.write(`drill: ${line}\n`);
}

/** The plan the drill follows; TARGET_UNREACHABLE (nothing done) when there is none. */
function planDrill(ctx: RepoContext, cfg: Config, opts: DrillOptions): { plan: Plan; random: boolean } {
  return Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) => {
    const input = restorableInput(cat, opts.backup);
    let target: Target;
    let timeline = opts.timeline;
    if (opts.target === 'random') {
      const pick = pickRandomTarget(computeRanges(input, msToMicros(Date.now())), opts.random ?? Math.random);
      if (!pick) throw new WalshipError('TARGET_UNREACHABLE', 'no recoverable window has a time target to draw from (see walship ranges)');
      target = { type: 'time', time: pick.time };
      timeline = pick.timeline;
    } else {
      target = opts.target;
    }
    // Its own prefetch spool (beside the scratch data directory), never a configured one a real restore may use.
    const restoreCommand = restoreCommandFor({ ...cfg, spool_dir: undefined }, ctx.repoUrl);
    const plan = planRecovery(input, target, { restoreCommand, timeline, inclusive: opts.inclusive });
    if (!plan.reachable) throw new WalshipError('TARGET_UNREACHABLE', refusalLine(plan));
    return { plan, random: opts.target === 'random' };
  });
}

export async function runDrill(ctx: RepoContext, cfg: Config, opts: DrillOptions): Promise<DrillReport> {
  if (process.geteuid?.() === 0) {
    throw new WalshipError('USAGE', 'walship drill starts PostgreSQL, which refuses to run as root: run it as the cluster\'s OS user (e.g. sudo -u postgres walship drill ...)');
  }
  const parent = resolve(opts.workdir ?? tmpdir());
  const leftoversRemoved = await cleanLeftovers(parent);
  for (const d of leftoversRemoved) logger.info('removed what a killed drill left', { dir: d });
  await syncCatalog(ctx);
  const { plan, random } = planDrill(ctx, cfg, opts);
  const { summary } = await readBackup(ctx.storage, plan.backup.name);
  const binDir = serverBinDir(summary.pgMajor, cfg.pg_bin);
  let sqlText: string | null = null;
  if (opts.checkSql) {
    sqlText = await fsp.readFile(opts.checkSql.path, 'utf8').catch((err: unknown) => {
      throw new WalshipError('USAGE', `--check-sql ${opts.checkSql!.path}: ${describeSystemError(err)}`);
    });
  }

  const scratch = await createScratch(parent);
  const walBytes = Math.max(0, (parseLsn(plan.wal.to) ?? 0) - (parseLsn(plan.wal.from) ?? 0));
  const need = summary.rawBytes + walBytes + MARGIN;
  const free = freeBytes(scratch);
  if (free < need) {
    await removeScratch(scratch);
    throw new WalshipError(
      'NO_SPACE',
      `${parent} has ${mib(free)} free; the drill needs about ${mib(need)} (backup ${mib(summary.rawBytes)}, WAL ${mib(walBytes)}, ${mib(MARGIN)} to spare): choose another place with --workdir`,
    );
  }

  const pgdata = join(scratch, 'data');
  const startedAt = new Date();
  const t0 = Date.now();
  let server: DrillServer | null = null;
  let client: Client | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    void removeScratch(scratch).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  if (!opts.keep) {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }
  const rec: DrillRecord = {
    format: 1,
    startedAt: startedAt.toISOString(),
    finishedAt: '',
    host: hostname(),
    backup: { id: summary.id, label: summary.label, stopTime: summary.stopTime },
    target: { type: plan.target.type, value: plan.target.value, timeline: plan.timeline, random },
    promised: { timeline: plan.timeline, lastXact: plan.replayed.lastXact, exact: plan.replayed.exact, stop: plan.stop.description },
    reached: null,
    durations: { restore: 0, replay: null, checks: null, total: 0 },
    walReplayedBytes: null,
    restoredBytes: 0,
    amcheck: 'not run',
    tables: [],
    checks: [],
    verdict: 'failed',
    failure: null,
  };
  let kept: DrillReport['kept'] = null;
  try {
    say(opts, `restoring backup ${summary.id} into ${pgdata}`);
    const remap = new Map<string, string>();
    for (const line of (summary.tablespaceMap ?? '').split('\n')) {
      const oid = line.split(' ')[0];
      if (oid && /^\d+$/.test(oid)) remap.set(oid, join(scratch, 'tablespaces', oid));
    }
    const restored = await restoreBackup(ctx.storage, summary.id, {
      pgdata,
      force: false,
      tablespaceRemap: remap,
      standby: false,
      recoveryConf: plan.conf,
      parallel: opts.parallel,
      progress: opts.progress,
    });
    rec.restoredBytes = restored.bytes;
    rec.durations.restore = secondsSince(t0);

    say(opts, `recovering: ${plan.stop.description}`);
    const t1 = Date.now();
    server = await startServer(binDir, summary.pgMajor, pgdata, scratch);
    const roles = [...new Set([cfg.pg_user, process.env.PGUSER, userName(), 'postgres'].filter((r): r is string => !!r))];
    const up = await waitPromoted(server, roles, opts.timeoutMs);
    client = up.client;
    rec.durations.replay = secondsSince(t1);

    say(opts, 'checking');
    const t2 = Date.now();
    await checkServer(server, up.role, client, { plan, pgdata, binDir, major: summary.pgMajor, startLsn: summary.startLsn, sql: sqlText && opts.checkSql ? { ...opts.checkSql, text: sqlText } : null }, rec);
    rec.durations.checks = secondsSince(t2);
    rec.verdict = verdictOf(rec.checks);
    if (rec.verdict === 'failed') rec.failure = rec.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`).join('; ');
    if (opts.keep) kept = { pgdata, socketDir: server.socketDir, port: server.port };
  } catch (err) {
    const we = asWalshipError(err);
    rec.verdict = 'failed';
    rec.failure = we.message;
    rec.checks.push({ name: rec.durations.replay === null ? (rec.restoredBytes === 0 ? 'restore' : 'recovery') : 'checks', ok: false, detail: we.message });
  } finally {
    await client?.end().catch(() => undefined);
    if (opts.keep) {
      await markKept(scratch);
      kept ??= { pgdata, socketDir: join(scratch, 'socket'), port: server?.port ?? 5432 };
    } else {
      await removeScratch(scratch);
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    }
  }
  rec.finishedAt = new Date().toISOString();
  rec.durations.total = secondsSince(t0);
  const key = drillKey(startedAt);
  await storeDrill(ctx.storage, key, rec);
  logger.info('drill', { key, verdict: rec.verdict, backup: summary.id, total: rec.durations.total });
  return { ...rec, key, kept, leftoversRemoved };
}

interface CheckInput {
  plan: Plan;
  pgdata: string;
  binDir: string;
  major: number;
  startLsn: string;
  sql: { database: string; text: string } | null;
}

/** The checks of the recovered server (module comment), into `rec`. */
async function checkServer(server: DrillServer, role: string, client: Client, x: CheckInput, rec: DrillRecord): Promise<void> {
  const reached = await readReached(client, x.pgdata);
  rec.reached = reached;
  rec.walReplayedBytes = Math.max(0, (parseLsn(reached.replayLsn) ?? 0) - (parseLsn(x.startLsn) ?? 0));
  // The same array as the record's: what was checked before a failure stays in the record.
  const checks: Check[] = (rec.checks = judgeReached(x.plan, reached));
  const connect = (database: string) => connectTo(server, role, database);
  const dbs = await databases(client);
  // pg_amcheck needs the amcheck extension's 1.3 (PostgreSQL 14 on) among the server's extensions.
  const available = ((await client.query("SELECT count(*)::int AS n FROM pg_available_extensions WHERE name = 'amcheck'")).rows[0] as { n: number }).n > 0;
  const amcheck = x.major >= 14 && available ? amcheckProgram(x.binDir, x.major) : null;
  if (amcheck) {
    const a = await runAmcheck(amcheck, server, role);
    rec.amcheck = a.ok ? 'passed' : 'failed';
    checks.push({ name: 'pg_amcheck', ok: a.ok, detail: a.ok ? `heap and btree of ${dbs.length} database(s) sound` : a.output });
  } else {
    rec.amcheck = x.major >= 14 ? 'not installed' : 'not supported';
  }
  rec.tables = await countRows(connect, dbs, !amcheck);
  checks.push({ name: 'read', ok: true, detail: `${rec.tables.length} table(s) in ${dbs.length} database(s) counted${amcheck ? '' : ', and every relation read (no pg_amcheck)'}` });
  if (x.sql) {
    for (const q of await runSqlChecks(connect, x.sql.database, x.sql.text)) {
      checks.push({ name: q.n > 0 ? `check-sql #${q.n}` : 'check-sql', ok: q.ok, detail: q.detail });
    }
  }
}

function userName(): string | undefined {
  try {
    return userInfo().username;
  } catch {
    return undefined;
  }
}
