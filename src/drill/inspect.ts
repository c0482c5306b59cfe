/**
 * What the drill reads from the recovered server: the point recovery reached (the last replayed
 * transaction's time, the timeline it branched from), the soundness of the data (pg_amcheck over
 * every database when it can, else a read of every relation), the rows of every table, and the
 * operator's own checks (--check-sql). Each reading is a fact; judge.ts decides.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import { parseHistoryFile } from '../wal/history.js';
import { hex8 } from '../wal/names.js';
import type { DrillServer } from './server.js';

export interface Reached {
  /** The timeline the promoted server writes on, and the one it branched from (its history file). */
  timeline: number;
  parentTimeline: number | null;
  /** pg_last_xact_replay_timestamp(), ISO 8601 with microseconds; null: no transaction replayed. */
  lastXactTime: string | null;
  /** pg_last_wal_replay_lsn(). */
  replayLsn: string;
}

export async function readReached(client: Client, pgdata: string): Promise<Reached> {
  const r = (
    await client.query(
      `SELECT to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t,
              pg_last_wal_replay_lsn()::text AS lsn, pg_walfile_name(pg_current_wal_lsn()) AS wal`,
    )
  ).rows[0] as { t: string | null; lsn: string; wal: string };
  const timeline = parseInt(r.wal.slice(0, 8), 16);
  let parentTimeline: number | null = null;
  try {
    const entries = parseHistoryFile(readFileSync(join(pgdata, 'pg_wal', `${hex8(timeline)}.history`), 'utf8'));
    parentTimeline = entries && entries.length > 0 ? entries[entries.length - 1]!.parent : null;
  } catch {
    /* no history file: the server did not branch */
  }
  return { timeline, parentTimeline, lastXactTime: r.t, replayLsn: r.lsn };
}

export interface TableCount {
  database: string;
  table: string;
  rows: number;
}

type Connect = (database: string) => Promise<Client>;

/** The databases a client can connect to. */
export async function databases(client: Client): Promise<string[]> {
  return ((await client.query('SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname')).rows as { datname: string }[]).map((r) => r.datname);
}

/**
 * count(*) of every table and materialized view, per database; with `everyRelation`, of the
 * system catalogs and TOAST tables too (the reads that stand in for pg_amcheck), though only the
 * user tables are returned.
 */
export async function countRows(connect: Connect, dbs: string[], everyRelation: boolean): Promise<TableCount[]> {
  const out: TableCount[] = [];
  for (const database of dbs) {
    const c = await connect(database);
    try {
      const rels = (
        await c.query(
          `SELECT format('%I.%I', n.nspname, c.relname) AS name,
                  n.nspname IN ('pg_catalog', 'information_schema') OR n.nspname LIKE 'pg\\_toast%' OR n.nspname LIKE 'pg\\_temp%' AS system
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'm', 't') AND c.relpersistence <> 't' ORDER BY 1`,
        )
      ).rows as { name: string; system: boolean }[];
      for (const rel of rels) {
        if (rel.system && !everyRelation) continue;
        const n = Number(((await c.query(`SELECT count(*) AS n FROM ${rel.name}`)).rows[0] as { n: string }).n);
        if (!rel.system) out.push({ database, table: rel.name, rows: n });
      }
    } finally {
      await c.end().catch(() => undefined);
    }
  }
  return out;
}

export interface AmcheckOutcome {
  ok: boolean;
  /** The first lines it printed (the damage it found, or why it could not run). */
  output: string;
}

/** pg_amcheck over every database (heap and btree), installing the amcheck extension where it is missing. */
export function runAmcheck(program: string, s: DrillServer, role: string): Promise<AmcheckOutcome> {
  return new Promise((resolve) => {
    execFile(
      program,
      ['-h', s.socketDir, '-p', String(s.port), '-U', role, '--all', '--install-missing', '--no-password'],
      { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024, env: { ...process.env, PGCONNECT_TIMEOUT: '30' } },
      (err, stdout, stderr) => {
        const output = `${stdout}\n${stderr}`.trim().split('\n').filter(Boolean).slice(0, 20).join('\n');
        resolve({ ok: err === null, output });
      },
    );
  });
}

export interface SqlCheck {
  /** 1-based position of the statement in the file. */
  n: number;
  ok: boolean;
  detail: string;
}

/**
 * Runs the operator's checks (a file of SQL statements, sent as one simple query) in `database`:
 * every statement must return exactly one row whose first column is true.
 */
export async function runSqlChecks(connect: Connect, database: string, sql: string): Promise<SqlCheck[]> {
  const c = await connect(database);
  try {
    const res = await c.query(sql);
    const results = Array.isArray(res) ? res : [res];
    return results.map((r, i) => {
      const row = r.rows?.[0] as Record<string, unknown> | undefined;
      const first = row ? Object.values(row)[0] : undefined;
      const ok = r.rows?.length === 1 && first === true;
      return { n: i + 1, ok, detail: ok ? 'true' : r.rows?.length !== 1 ? `returned ${r.rows?.length ?? 0} rows, not one` : `returned ${JSON.stringify(first)}, not true` };
    });
  } catch (err) {
    return [{ n: 0, ok: false, detail: `the checks failed to run: ${(err as Error).message}` }];
  } finally {
    await c.end().catch(() => undefined);
  }
}
