/** PostgreSQL: one query in a read-only transaction; its time is what a slow database shows. */
import { z } from 'zod';
import { loadPg, probePostgres } from '../../lib/probe-postgres.js';
import { defineProber, readSecret } from './prober.js';

const URL_FORM = /^postgres(ql)?:\/\//;

/** A password in a connection string: `postgres://u:pw@h` or `password=pw`. */
function hasPassword(conn: string): boolean {
  if (URL_FORM.test(conn)) {
    // Not a URL pg can read either: left to pg, which says why at probe time.
    if (!URL.canParse(conn)) return false;
    const url = new URL(conn);
    return url.password !== '' || url.searchParams.has('password');
  }
  return /(^|\s)password\s*=/.test(conn);
}

export const prober = defineProber({
  kind: 'postgres',
  title: 'PostgreSQL',
  fields: {
    connection_string: z
      .string()
      .min(1)
      .optional()
      .describe(
        'libpq connection string or URL without a password, e.g. "postgres://lookout@127.0.0.1:5432/app?sslmode=require".',
      ),
    connection_string_file: z
      .string()
      .min(1)
      .optional()
      .describe(
        'File holding the whole connection string (password included), instead of connection_string.',
      ),
    password_file: z
      .string()
      .min(1)
      .optional()
      .describe('File holding the password (read at each probe; a trailing newline is dropped).'),
    query: z
      .string()
      .min(1)
      .default('select 1')
      .describe(
        'One SQL statement, run in a read-only transaction; its time is what a slow database shows.',
      ),
  },
  refine(t, problem) {
    const both = t.connection_string !== undefined && t.connection_string_file !== undefined;
    const neither = t.connection_string === undefined && t.connection_string_file === undefined;
    if (both || neither)
      problem([], 'give exactly one of connection_string and connection_string_file');
    else if (t.connection_string !== undefined && hasPassword(t.connection_string))
      problem(
        ['connection_string'],
        'holds a password; put it in password_file (or the whole string in connection_string_file) so the config holds no secret',
      );
    if (t.connection_string_file !== undefined && t.name === undefined)
      problem(
        ['name'],
        'required with connection_string_file (the label cannot come from a secret)',
      );
  },
  label(t) {
    const conn = t.connection_string;
    if (conn === undefined) return undefined;
    // user@host:port/db, without query parameters.
    if (!URL_FORM.test(conn) || !URL.canParse(conn)) return conn;
    const u = new URL(conn);
    return `${u.protocol}//${u.username ? u.username + '@' : ''}${u.host}${u.pathname}`;
  },
  load: () => loadPg(),
  async check(t, { signal }) {
    return probePostgres(
      {
        connectionString: t.connection_string ?? (await readSecret(t.connection_string_file!)),
        password: t.password_file === undefined ? undefined : await readSecret(t.password_file),
        query: t.query,
      },
      signal,
    );
  },
});
