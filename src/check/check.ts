/**
 * `walship check`: proves, against the running server, that archiving into this repository
 * works end to end, as pgBackRest's check does: the server's settings name walship, a WAL
 * switch's segment is archived into this repository within the timeout, indexed by a sync, and
 * fetched back with every check fetch makes. Fails with the reason (CHECK_FAILED).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { WalshipError } from '../errors.js';
import { Catalog } from '../catalog/catalog.js';
import { connect } from '../backup/connect.js';
import { objectKeyFor } from '../archive/keys.js';
import { fetchFile } from '../archive/fetch.js';
import { parseWalFileName } from '../wal/names.js';
import { syncCatalog, type RepoContext } from '../sync/sync.js';

export interface CheckResult {
  segment: string;
  archivedSeconds: number;
  indexed: boolean;
  fetchedBytes: number;
}

const fail = (why: string) => new WalshipError('CHECK_FAILED', `check failed: ${why}`);

export async function runCheck(ctx: RepoContext, cfg: Config, timeoutMs: number): Promise<CheckResult> {
  const client = await connect(cfg, 'walship check');
  let segment: string;
  const t0 = Date.now();
  try {
    const s = (
      await client.query(
        "SELECT current_setting('archive_mode') AS mode, current_setting('archive_command') AS command, pg_is_in_recovery() AS standby",
      )
    ).rows[0] as { mode: string; command: string; standby: boolean };
    if (s.standby) throw fail('the server is a standby: run walship check against the primary (a standby cannot switch WAL)');
    if (s.mode === 'off') throw fail('archive_mode is off: set archive_mode = on and restart the server');
    if (!/\bwalship\b.*\barchive-push\b/.test(s.command)) throw fail(`archive_command is not walship archive-push: '${s.command}'`);
    // A record first (a logical message, which changes no data), so that the switch always
    // closes a segment of its own: on an idle server it would otherwise close none.
    const failedBefore = ((await client.query('SELECT last_failed_time FROM pg_stat_archiver')).rows[0] as { last_failed_time: Date | null }).last_failed_time?.getTime() ?? 0;
    await client.query("SELECT pg_logical_emit_message(false, 'walship', 'check')");
    segment = ((await client.query('SELECT pg_walfile_name(pg_switch_wal()) AS name')).rows[0] as { name: string }).name;
    const key = objectKeyFor(parseWalFileName(segment)!);
    for (;;) {
      if (await ctx.storage.head(key)) break;
      const a = (await client.query('SELECT last_archived_wal, last_failed_wal, last_failed_time FROM pg_stat_archiver')).rows[0] as {
        last_archived_wal: string | null;
        last_failed_wal: string | null;
        last_failed_time: Date | null;
      };
      // (Looked at again: the push may have completed between the two looks.)
      if (a.last_archived_wal !== null && a.last_archived_wal >= segment && !(await ctx.storage.head(key))) {
        throw fail(`the server archived ${a.last_archived_wal}, but ${ctx.storage.location} has no ${segment}: archive_command archives into another repository ('${s.command}')`);
      }
      if (a.last_failed_time !== null && a.last_failed_time.getTime() > failedBefore) {
        throw fail(`archiving is failing: PostgreSQL's last failure is ${a.last_failed_wal} at ${a.last_failed_time.toISOString()} (the server log has walship's error)`);
      }
      if (Date.now() - t0 > timeoutMs) throw fail(`${segment} was not archived into ${ctx.storage.location} within ${timeoutMs / 1000} s (pg_stat_archiver: last archived ${a.last_archived_wal ?? 'none'}, last failed ${a.last_failed_wal ?? 'none'}; after failures PostgreSQL waits up to a minute before it tries again)`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await client.end().catch(() => undefined);
  }
  const archivedSeconds = (Date.now() - t0) / 1000;
  await syncCatalog(ctx);
  const indexed = Catalog.use(ctx.catalogPath, ctx.repoUrl, (cat) => cat.walFile(segment) !== null);
  if (!indexed) throw fail(`${segment} is in the repository but a sync did not index it (see walship catalog sync)`);
  const dir = await mkdtemp(join(tmpdir(), 'walship-check-'));
  try {
    const got = await fetchFile(ctx, segment, join(dir, segment));
    return { segment, archivedSeconds, indexed, fetchedBytes: got.rawSize };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
