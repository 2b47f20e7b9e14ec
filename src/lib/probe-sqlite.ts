/**
 * SQLite probe: a query on a database opened read-only, through `node:sqlite` (Node 22.5
 * and later). node:sqlite is synchronous, so each probe runs in a worker thread: a slow
 * query or a locked database holds that thread, not the event loop that serves
 * /metrics, and the worker is terminated at the target's deadline.
 */
import { isBuiltin } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { ProbeOutcome } from './probe-tcp.js';

export const SQLITE_NODE = '22.5';

/** Whether this Node has node:sqlite (22.5+; 22.5–22.12 only with --experimental-sqlite). */
export function sqliteAvailable(): boolean {
  return isBuiltin('node:sqlite');
}

export function sqliteUnavailableMessage(): string {
  return `kind "sqlite" needs node:sqlite, which Node ${SQLITE_NODE} and later have (22.5 to 22.12 with --experimental-sqlite); this is Node ${process.version}. Run lookout on a newer Node, or remove this target`;
}

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { DatabaseSync } = require('node:sqlite');
// node:sqlite before 22.12 has no readOnly option (it is ignored); query_only holds on every SQLite.
const db = new DatabaseSync(workerData.path, { readOnly: true });
try {
  db.exec('PRAGMA query_only = ON');
  const t0 = performance.now();
  const rows = db.prepare(workerData.query).all();
  parentPort.postMessage({ rows: rows.length, ms: performance.now() - t0 });
} finally {
  db.close();
}
`;

export function probeSqlite(
  p: { path: string; query: string },
  signal: AbortSignal,
): Promise<ProbeOutcome> {
  return new Promise((resolve, reject) => {
    signal.throwIfAborted();
    const worker = new Worker(WORKER, { eval: true, workerData: p });
    const onAbort = () => {
      void worker.terminate();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (m: { rows: number; ms: number }) => {
      signal.removeEventListener('abort', onAbort);
      resolve({ ok: true, detail: `query took ${m.ms.toFixed(0)} ms, ${m.rows} rows` });
    });
    worker.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      reject(err);
    });
    worker.once('exit', (code) => {
      signal.removeEventListener('abort', onAbort);
      reject(new Error(`sqlite worker exited ${code} without an answer`));
    });
  });
}
