/**
 * A throwaway PostgreSQL cluster from Debian's package (ENVIRONMENT.md): initdb as the
 * `postgres` user into a temp directory, password authentication (scram-sha-256) for the
 * superuser `lookout`, listening on a free 127.0.0.1 port and a socket in that directory.
 */
import { execFile } from 'node:child_process';
import { chown, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, tempDir } from './procs.js';

const run = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';

export interface Postgres {
  port: number;
  dir: string;
  user: string;
  password: string;
  /** postgres://lookout@127.0.0.1:PORT/postgres — no password in it. */
  url: string;
  /** psql as the superuser; resolves with its stdout. */
  psql(sql: string): Promise<string>;
  stop(): Promise<void>;
}

async function asPostgres(command: string): Promise<string> {
  const { stdout } = await run('su', ['postgres', '-s', '/bin/sh', '-c', command], {
    maxBuffer: 1 << 20,
  });
  return stdout;
}

export async function startPostgres(): Promise<Postgres> {
  if (userInfo().uid !== 0) throw new Error('startPostgres needs root (initdb runs as postgres)');
  const dir = await tempDir('lookout-pg-');
  const port = await freePort();
  const user = 'lookout';
  const password = 'probe-secret';
  await writeFile(join(dir, 'pw'), password + '\n');
  const { uid, gid } = await run('id', ['-u', 'postgres']).then(async (u) => ({
    uid: Number(u.stdout),
    gid: Number((await run('id', ['-g', 'postgres'])).stdout),
  }));
  await chown(dir, uid, gid);
  await chown(join(dir, 'pw'), uid, gid);
  await asPostgres(
    `${BIN}/initdb -D ${dir}/data -A scram-sha-256 -U ${user} --pwfile=${dir}/pw >${dir}/initdb.log 2>&1`,
  );
  await asPostgres(
    `${BIN}/pg_ctl -D ${dir}/data -l ${dir}/pg.log -w -o '-c listen_addresses=127.0.0.1 -p ${port} -k ${dir}' start >/dev/null`,
  );
  const env = { ...process.env, PGPASSWORD: password };
  return {
    port,
    dir,
    user,
    password,
    url: `postgres://${user}@127.0.0.1:${port}/postgres`,
    psql: async (sql) =>
      (
        await run(
          'psql',
          ['-h', '127.0.0.1', '-p', String(port), '-U', user, '-d', 'postgres', '-Atc', sql],
          {
            env,
          },
        )
      ).stdout,
    stop: async () => {
      await asPostgres(`${BIN}/pg_ctl -D ${dir}/data -m immediate -w stop >/dev/null`);
      // A cluster is ~40 MB; the temp dir goes with it.
      await rm(dir, { recursive: true, force: true });
    },
  };
}
