/** SQLite: one query on a database opened read-only, in a worker thread. */
import { z } from 'zod';
import { probeSqlite, sqliteAvailable, sqliteUnavailableMessage } from '../../lib/probe-sqlite.js';
import { defineProber } from './prober.js';

export const prober = defineProber({
  kind: 'sqlite',
  title: 'SQLite',
  fields: {
    path: z.string().min(1).describe('Database file, opened read-only.'),
    query: z.string().min(1).default('select 1').describe('One SQL statement, run read-only.'),
  },
  refine(_t, problem) {
    if (!sqliteAvailable()) problem(['kind'], sqliteUnavailableMessage());
  },
  label: (t) => t.path,
  check: (t, { signal }) => probeSqlite({ path: t.path, query: t.query }, signal),
});
