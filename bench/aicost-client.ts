/**
 * bench/aicost.ts's load generator, in a process of its own so its CPU is not counted as
 * lookout's (lookout's is read from /proc by pid). An undici Pool (one connection per
 * client) posts bodies serialized before the clock starts.
 *
 *   argv[2]: JSON Job
 *   stdout:  JSON Result; times are Unix ms (the caller's clock differs)
 *
 * Kinds:
 * - batched: `clients` connections post `total` events in bodies of BATCH, back to back,
 *   after a second of the same to warm up;
 * - closed: `clients` connections post `total` single events back to back (saturation:
 *   each client sends its next event when its last is answered);
 * - open: `total` single events scheduled at a fixed `rate` (events/s) over `clients`
 *   connections, whatever the answers; each latency runs from the event's scheduled send
 *   time, so time spent queued behind a slow answer counts. The clock starts after a
 *   warm-up (every connection open, then a second at the rate), as for a running app.
 */
import { Pool } from 'undici';
import { BATCH, eventJson, TOKEN } from './aicost-events.js';

export interface Job {
  kind: 'batched' | 'closed' | 'open';
  url: string;
  total: number;
  clients: number;
  prefix: string;
  /** events/s (open). */
  rate?: number;
}

export interface Result {
  start: number;
  /** When the first request, warm-up included, was sent (batched: the rate from a fresh lookout). */
  coldStart: number;
  end: number;
  /** Milliseconds per request, in the order answered (single-event kinds). */
  latencies: number[];
  requests: number;
  /** Requests sent before the clock started (open, batched): counted in lookout's CPU, not in the figures. */
  warmup: number;
  /** The generator's own CPU-seconds. */
  cpu: number;
}

const job = JSON.parse(process.argv[2]!) as Job;
const origin = new URL(job.url).origin;
const pool = new Pool(origin, { connections: job.clients, pipelining: 1 });
const headers = { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` };

const bodies: Buffer[] = [];
if (job.kind === 'batched') {
  for (let s = 0; s < job.total; s += BATCH) {
    const parts: string[] = [];
    for (let i = s; i < Math.min(job.total, s + BATCH); i++)
      parts.push(eventJson(`${job.prefix}${i}`, i));
    bodies.push(Buffer.from(`{"events":[${parts.join(',')}]}`));
  }
} else {
  for (let i = 0; i < job.total; i++) bodies.push(Buffer.from(eventJson(`${job.prefix}${i}`, i)));
}

async function post(body: Buffer): Promise<void> {
  const res = await pool.request({ path: '/api/v1/ai-usage', method: 'POST', headers, body });
  const text = await res.body.text();
  if (res.statusCode !== 200)
    throw new Error(`ingest: HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
}

const latencies: number[] = [];
const cpu0 = process.cpuUsage();
let start = Date.now();
let coldStart = start;
let warmup = 0;

/** Posts `list` at `rate` per second whatever the answers; resolves with each latency from its scheduled send time. */
function openLoop(list: Buffer[], rate: number): Promise<number[]> {
  const interval = 1000 / rate;
  const t0 = performance.now() + 20;
  const times: number[] = [];
  let next = 0;
  let failed: Error | undefined;
  return new Promise<number[]>((resolve, reject) => {
    const fire = (i: number) => {
      const scheduled = t0 + i * interval;
      post(list[i]!).then(
        () => {
          times.push(performance.now() - scheduled);
          if (times.length === list.length) resolve(times);
        },
        (err: Error) => {
          failed ??= err;
          reject(err);
        },
      );
    };
    const tick = () => {
      if (failed) return;
      const now = performance.now();
      while (next < list.length && t0 + next * interval <= now) fire(next++);
      if (next < list.length)
        setTimeout(tick, Math.max(0, t0 + next * interval - performance.now()));
    };
    setTimeout(tick, 20);
  });
}

if (job.kind === 'open') {
  // A client of a running app has its connections open and its code warm: the clock
  // starts after every connection has posted and a second at the rate has run.
  const warm = Array.from({ length: job.clients + job.rate! }, (_, i) =>
    Buffer.from(eventJson(`${job.prefix}warm-${i}`, i)),
  );
  await Promise.all(warm.slice(0, job.clients).map(post));
  await openLoop(warm.slice(job.clients), job.rate!);
  warmup = warm.length;
  start = Date.now();
  for (const l of await openLoop(bodies, job.rate!)) latencies.push(l);
} else {
  if (job.kind === 'batched') {
    // As for the open loop, a running app's client: the clock starts after every
    // connection has posted bodies back to back for a second. `coldStart` keeps when the
    // first was sent, so the rate from a fresh lookout is reported too.
    coldStart = Date.now();
    let w = 0;
    const until = performance.now() + 1000;
    await Promise.all(
      Array.from({ length: job.clients }, async () => {
        while (performance.now() < until) {
          const i = w++;
          const parts: string[] = [];
          for (let k = 0; k < BATCH; k++) parts.push(eventJson(`${job.prefix}warm-${i}-${k}`, k));
          await post(Buffer.from(`{"events":[${parts.join(',')}]}`));
        }
      }),
    );
    warmup = w;
    start = Date.now();
  }
  let next = 0;
  await Promise.all(
    Array.from({ length: job.clients }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++]!;
        const t = performance.now();
        await post(body);
        if (job.kind === 'closed') latencies.push(performance.now() - t);
      }
    }),
  );
}
const end = Date.now();
const used = process.cpuUsage(cpu0);
await pool.close();
const result: Result = {
  start,
  coldStart,
  end,
  latencies,
  requests: bodies.length,
  warmup,
  cpu: (used.user + used.system) / 1e6,
};
process.stdout.write(JSON.stringify(result));
