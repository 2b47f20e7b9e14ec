/**
 * PostgreSQL probe: connect, run the configured query in a read-only transaction, time
 * it. The `pg` library speaks the protocol (authentication, TLS, SCRAM); one client per
 * probe, ended after it, so a probe sees what a new connection sees.
 */
import type { ClientConfig, QueryConfig } from 'pg';
import { untilAborted, type ProbeOutcome } from './probe-tcp.js';

export interface PostgresProbe {
  connectionString: string;
  password?: string;
  query: string;
}

type PgModule = typeof import('pg');
let pgModule: Promise<PgModule> | undefined;

/** pg is loaded when a postgres target is configured, not by every lookout. */
export function loadPg(): Promise<PgModule> {
  pgModule ??= import('pg');
  return pgModule;
}

export async function probePostgres(p: PostgresProbe, signal: AbortSignal): Promise<ProbeOutcome> {
  const pg = await loadPg();
  signal.throwIfAborted();
  const config: ClientConfig = {
    connectionString: p.connectionString,
    application_name: 'lookout',
    // Every transaction of this session is read-only, not only the one opened below.
    options: '-c default_transaction_read_only=on',
  };
  const client = new pg.Client(config);
  // Set after parsing: pg lets the connection string's (absent) password win over config.password.
  if (p.password !== undefined) client.password = p.password;
  // pg emits 'error' on the client for a socket that dies between queries; the awaited
  // call rejects with it too, so this listener only keeps it from being unhandled.
  client.on('error', () => undefined);
  const aborted = untilAborted(signal);
  aborted.catch(() => undefined);
  // At the deadline the socket is cut: pg takes no AbortSignal, and a server that
  // accepts and never answers would otherwise hold the connect for ever.
  const cut = () => client.connection.stream.destroy();
  signal.addEventListener('abort', cut, { once: true });
  try {
    await Promise.race([client.connect(), aborted]);
    await Promise.race([client.query('BEGIN READ ONLY'), aborted]);
    // The extended protocol takes exactly one statement, so a query cannot end the
    // read-only transaction with a COMMIT of its own and write after it.
    const query: QueryConfig & { queryMode: 'extended' } = {
      text: p.query,
      queryMode: 'extended',
    };
    const t0 = performance.now();
    const result = await Promise.race([client.query(query), aborted]);
    const ms = performance.now() - t0;
    await Promise.race([client.query('ROLLBACK'), aborted]);
    return { ok: true, detail: `query took ${ms.toFixed(0)} ms, ${result.rowCount ?? 0} rows` };
  } finally {
    signal.removeEventListener('abort', cut);
    if (signal.aborted) cut();
    else client.end().catch(() => undefined);
  }
}
