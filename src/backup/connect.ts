/** One connection to the server, from the pg_* settings (else libpq's PG* variables), for backup and check. */
import type { Client } from 'pg';
import type { Config } from '../config.js';
import { WalshipError, describeSystemError } from '../errors.js';

export async function connect(cfg: Config, applicationName: string): Promise<Client> {
  const pg = (await import('pg')).default;
  const client = new pg.Client({
    host: cfg.pg_host,
    port: cfg.pg_port,
    user: cfg.pg_user,
    database: cfg.pg_database ?? process.env.PGDATABASE ?? 'postgres',
    application_name: applicationName,
  });
  try {
    await client.connect();
  } catch (err) {
    throw new WalshipError(
      'USAGE',
      `cannot connect to PostgreSQL (${describeSystemError(err)}): set pg_host / pg_port / pg_user / pg_database or the PG* variables`,
    );
  }
  client.on('error', () => undefined);
  return client;
}
