/**
 * The abuse scenario of test/abuse.test.ts and bench/abuse.ts, in one place: abusive
 * clients on 127.0.0.1 in phases (a flood of parallel scrapes, oversized headers,
 * oversized bodies, a slowloris client, 1,000 idle connections; behind TLS + basic auth a
 * wrong-password flood and 1,000 connections that never handshake), while a well-behaved
 * scraper in its own process — curl, one kept-alive connection, one scrape a second, as
 * Prometheus scrapes — times every transfer. The scraper is not in this process: the
 * abusive clients' own event-loop stalls would land in its figures otherwise.
 * Bounded: fixed counts, and every phase has a deadline.
 */
import { quantile, residentBytes } from '../../bench/stats.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { Agent, request } from 'undici';

export const RSS_TARGET_BYTES = 80 * 1024 * 1024;

/** One well-behaved scrape: curl's status and transfer time, and when this process read it. */
export interface Scrape {
  /** performance.now() when curl's line arrived (phase attribution; ± this loop's stalls). */
  at: number;
  status: number;
  ms: number;
  /** New connections curl opened for this transfer: 0 once its one connection is kept alive. */
  connects: number;
  /** The scraper's first scrape, which opens its connection. */
  opens: boolean;
}

/**
 * curl scraping `url` once a second over one kept-alive connection (`--rate 1/s`, every
 * URL on one command line), at most `max` times; `%{stderr}` because curl buffers its
 * stdout in a pipe and a line must arrive when the transfer ends.
 */
export class CurlScraper {
  readonly scrapes: Scrape[] = [];
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private waiters: (() => void)[] = [];

  constructor(url: string, max: number, curlArgs: string[] = []) {
    const args = [
      '-s',
      '--rate',
      '1/s',
      '-H',
      'Accept-Encoding: identity',
      '-w',
      '%{stderr}%{http_code} %{time_total} %{num_connects}\\n',
      ...curlArgs,
    ];
    for (let i = 0; i < max; i++) args.push('-o', '/dev/null', url);
    this.child = spawn('curl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let partial = '';
    this.child.stderr!.on('data', (b: Buffer) => {
      const at = performance.now();
      const lines = (partial + b.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        const [code, total, connects] = line.trim().split(' ');
        this.scrapes.push({
          at,
          status: Number(code),
          ms: Number(total) * 1000,
          connects: Number(connects),
          opens: this.scrapes.length === 0,
        });
      }
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.exited = new Promise((r) => this.child.once('exit', () => r()));
  }

  /** Resolves once `n` scrapes are in (or curl ended, or `timeoutMs` passed). */
  async waitFor(n: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.scrapes.length < n && this.child.exitCode === null) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${this.scrapes.length} of ${n} scrapes in ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
    await this.exited;
  }
}

/**
 * Samples a process's resident memory every 200 ms; `max` is the highest seen, `atMax`
 * its anonymous and file parts then.
 */
export function sampleRss(pid: number): {
  max: () => number;
  atMax: () => { anon: number; file: number };
  stop: () => void;
} {
  let peak = { rss: 0, anon: 0, file: 0 };
  const t = setInterval(() => {
    residentBytes(pid).then(
      (now) => {
        if (now.rss > peak.rss) peak = now;
      },
      () => undefined, // the process ended; the maximum so far stands
    );
  }, 200);
  return { max: () => peak.rss, atMax: () => peak, stop: () => clearInterval(t) };
}

export interface Raw {
  socket: Socket;
  /** The first line the server answered, '' if none. */
  first: () => string;
  sent: () => number;
  /** Milliseconds from connect() to close. */
  closed: Promise<number>;
}

/** A raw TCP client that records the status line it gets and when it is closed. */
export function raw(port: number, onConnect?: (s: Socket) => void): Raw {
  const socket = connect(port, '127.0.0.1');
  const t0 = performance.now();
  let data = '';
  let sent = 0;
  const write = socket.write.bind(socket);
  socket.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    sent += chunk.length;
    return write(chunk, ...rest);
  }) as typeof socket.write;
  socket.on('data', (b: Buffer) => {
    if (data.length < 200) data += b.toString('latin1');
  });
  socket.on('error', () => undefined); // a reset is an answer too; `first` says what came
  if (onConnect) socket.once('connect', () => onConnect(socket));
  const closed = new Promise<number>((r) => socket.once('close', () => r(performance.now() - t0)));
  return { socket, first: () => data.split('\r\n')[0] ?? '', sent: () => sent, closed };
}

/** Waits for every client to close, or destroys the rest at the deadline; how many it cut. */
async function closedOrCut(clients: Raw[], deadlineMs: number): Promise<number> {
  let cut = 0;
  const timer = setTimeout(() => {
    for (const c of clients) {
      if (!c.socket.destroyed) {
        cut++;
        c.socket.destroy();
      }
    }
  }, deadlineMs);
  await Promise.all(clients.map((c) => c.closed));
  clearTimeout(timer);
  return cut;
}

export interface AbuseTarget {
  port: number;
  /** The /metrics URL. */
  url: string;
  /** The CA of a TLS target. */
  ca?: string;
  /** The Authorization header of a right password, when the target wants basic auth. */
  authorization?: string;
  maxHeaderBytes: number;
}

/** A phase's name, its span (performance.now()) and what the abusive clients got. */
export interface Phase<R = unknown> {
  name: string;
  start: number;
  end: number;
  result: R;
}

/** A phase runs at least this long, repeating its abuse (bounded), so scrapes fall in it. */
const MIN_PHASE_MS = 2500;
/** Past this, a phase's clients are cut: a target without timeouts must not hang the run. */
const PHASE_DEADLINE_MS = 20_000;

async function phase<R>(name: string, body: () => Promise<R>): Promise<Phase<R>> {
  const start = performance.now();
  const result = await body();
  return { name, start, end: performance.now(), result };
}

/** Repeats `round` until MIN_PHASE_MS has passed, at most `rounds` times. */
async function repeat<R>(rounds: number, round: () => Promise<R[]>): Promise<R[]> {
  const t0 = performance.now();
  const out: R[] = [];
  for (let i = 0; i < rounds && (i === 0 || performance.now() - t0 < MIN_PHASE_MS); i++) {
    out.push(...(await round()));
  }
  return out;
}

export const FLOOD_WORKERS = 64;
export const FLOOD_EACH = 20;
export const IDLE = 1000;

/** `workers` parallel clients, `each` sequential GETs each; the statuses (0: no answer). */
async function flood(
  target: AbuseTarget,
  workers: number,
  each: number,
  authorization?: (w: number, i: number) => string,
): Promise<number[]> {
  const agent = new Agent({
    connections: workers,
    connect: target.ca ? { ca: target.ca } : undefined,
  });
  const statuses: number[] = [];
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; i < each; i++) {
        try {
          const res = await request(target.url, {
            dispatcher: agent,
            headers: authorization ? { authorization: authorization(w, i) } : {},
            headersTimeout: 10_000,
            bodyTimeout: 10_000,
          });
          await res.body.arrayBuffer();
          statuses.push(res.statusCode);
        } catch {
          statuses.push(0);
        }
      }
    }),
  );
  await agent.close();
  return statuses;
}

export interface PlainResults {
  flood: Phase<number[]>;
  headers: Phase<string[]>;
  bodies: Phase<string[]>;
  slowloris: Phase<{ first: string; ms: number; sent: number; cut: number }>;
  idle: Phase<{ first: string[]; maxClosedMs: number; cut: number }>;
}

/** The plain-HTTP abuse, phase after phase. */
export async function plainAbuse(target: AbuseTarget): Promise<PlainResults> {
  const port = target.port;
  const flooded = await phase('flood', () =>
    repeat(20, () => flood(target, FLOOD_WORKERS, FLOOD_EACH)),
  );
  const headers = await phase('oversized headers', () =>
    repeat(1000, async () => {
      const clients = Array.from({ length: 5 }, () =>
        raw(port, (s) =>
          s.write(
            `GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(target.maxHeaderBytes + 1024)}\r\n\r\n`,
          ),
        ),
      );
      await closedOrCut(clients, PHASE_DEADLINE_MS);
      return clients.map((c) => c.first());
    }),
  );
  const bodies = await phase('oversized bodies', () =>
    repeat(1000, async () => {
      const clients = Array.from({ length: 5 }, () =>
        raw(port, (s) =>
          s.write(
            `POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n${'a'.repeat(65536)}`,
          ),
        ),
      );
      await closedOrCut(clients, PHASE_DEADLINE_MS);
      return clients.map((c) => c.first());
    }),
  );
  const slowloris = await phase('slowloris', async () => {
    // A header byte a second, never finishing.
    const line = 'GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ';
    let i = 0;
    const slow = raw(port, (s) => {
      const t = setInterval(() => {
        if (s.destroyed) clearInterval(t);
        else s.write(line[i++ % line.length]!);
      }, 1000);
      s.once('close', () => clearInterval(t));
    });
    const cut = await closedOrCut([slow], PHASE_DEADLINE_MS);
    return { first: slow.first(), ms: await slow.closed, sent: slow.sent(), cut };
  });
  const idle = await phase('1,000 idle connections', async () => {
    const clients = Array.from({ length: IDLE }, () => raw(port));
    const cut = await closedOrCut(clients, PHASE_DEADLINE_MS);
    const closedIn = await Promise.all(clients.map((c) => c.closed));
    return { first: clients.map((c) => c.first()), maxClosedMs: Math.max(...closedIn), cut };
  });
  return { flood: flooded, headers, bodies, slowloris, idle };
}

export interface TlsResults {
  passwords: Phase<number[]>;
  handshakes: Phase<{ maxClosedMs: number; cut: number }>;
}

export const PASSWORD_WORKERS = 20;
export const PASSWORD_EACH = 20;

/** Behind TLS + basic auth: wrong passwords from 20 clients, then 1,000 connections that never handshake. */
export async function tlsAbuse(target: AbuseTarget, user: string): Promise<TlsResults> {
  const basic = (pw: string) => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`;
  let round = 0;
  const passwords = await phase('wrong-password flood', () =>
    repeat(10, () => {
      round++;
      return flood(target, PASSWORD_WORKERS, PASSWORD_EACH, (w, i) =>
        basic(`guess-${round}-${w}-${i}`),
      );
    }),
  );
  const handshakes = await phase('1,000 never-handshake connections', async () => {
    const clients = Array.from({ length: IDLE }, () => raw(target.port));
    const cut = await closedOrCut(clients, PHASE_DEADLINE_MS);
    const closedIn = await Promise.all(clients.map((c) => c.closed));
    return { maxClosedMs: Math.max(...closedIn), cut };
  });
  return { passwords, handshakes };
}

export interface PhaseFigures {
  phase: string;
  n: number;
  p50: number;
  p99: number;
  max: number;
  /** Statuses other than 200 among the phase's scrapes. */
  bad: number[];
  /** How long the phase ran, in seconds (a phase of abuse only). */
  seconds?: number;
}

const q = (sorted: number[], p: number) => (sorted.length === 0 ? NaN : quantile(sorted, p));

export function figures(phase: string, scrapes: Scrape[]): PhaseFigures {
  const ms = scrapes.map((s) => s.ms).sort((a, b) => a - b);
  return {
    phase,
    n: ms.length,
    p50: q(ms, 0.5),
    p99: q(ms, 0.99),
    max: ms.at(-1) ?? NaN,
    bad: scrapes.filter((s) => s.status !== 200).map((s) => s.status),
  };
}

/**
 * The scrapes that ended in each phase (a scrape's line arrives when it ends; a phase
 * run in several rounds takes the scrapes of all its rounds), plus `before` and `after`
 * the abuse, and all of them but each scraper's first (the last row).
 */
export function perPhase(phases: Phase[], scrapes: Scrape[]): PhaseFigures[] {
  const first = Math.min(...phases.map((p) => p.start));
  const last = Math.max(...phases.map((p) => p.end));
  // A scraper's first scrape opens its connection (and behind TLS + basic auth pays the
  // handshake and the one bcrypt compare before its credentials are cached): shown apart.
  const rest = scrapes.filter((s) => !s.opens);
  const rows = [
    figures(
      'first (opens the connection)',
      scrapes.filter((s) => s.opens),
    ),
  ];
  rows.push(
    figures(
      'before',
      rest.filter((s) => s.at < first),
    ),
  );
  for (const name of new Set(phases.map((p) => p.name))) {
    const spans = phases.filter((p) => p.name === name);
    rows.push({
      ...figures(
        name,
        rest.filter((s) => spans.some((p) => s.at >= p.start && s.at < p.end)),
      ),
      seconds: spans.reduce((a, p) => a + (p.end - p.start), 0) / 1000,
    });
  }
  rows.push(
    figures(
      'after',
      rest.filter((s) => s.at >= last),
    ),
  );
  rows.push(figures('all but the first', rest));
  return rows;
}

export function formatFigures(rows: PhaseFigures[], prefix = ''): string {
  const f = (v: number) => (Number.isNaN(v) ? '-' : v.toFixed(2));
  return rows
    .map(
      (r) =>
        `${prefix}${r.phase.padEnd(34)} n ${String(r.n).padStart(3)}  p50 ${f(r.p50).padStart(7)}  ` +
        `p99 ${f(r.p99).padStart(7)}  max ${f(r.max).padStart(7)} ms` +
        (r.seconds === undefined ? '' : `  (${r.seconds.toFixed(1)} s)`) +
        (r.bad.length > 0 ? `  not 200: ${r.bad.join(',')}` : ''),
    )
    .join('\n');
}

/** Scrapes before and after the abuse, so the scraper is seen settled on both sides. */
const SETTLE = 3;
/** A scraper's scrapes at most (its URLs are on curl's command line): ten minutes' worth. */
const MAX_SCRAPES = 600;

/**
 * Runs `abuse` while `scrapers` curl scrapers, each on its own kept-alive connection,
 * scrape `url` once a second each, spread evenly over the second (`curlArgs`: TLS and
 * auth options); SETTLE scrapes each before the abuse starts and after it ends. The
 * scrapes of all of them, in the order they ended.
 */
export async function scrapedThrough<R>(
  url: string,
  curlArgs: string[],
  abuse: () => Promise<R>,
  scrapers = 1,
): Promise<{ scrapes: Scrape[]; result: R }> {
  const running: CurlScraper[] = [];
  try {
    for (let i = 0; i < scrapers; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 1000 / scrapers));
      running.push(new CurlScraper(url, MAX_SCRAPES, curlArgs));
    }
    for (const s of running) await s.waitFor(SETTLE, 20_000);
    const result = await abuse();
    for (const s of running) await s.waitFor(s.scrapes.length + SETTLE, 20_000);
    const scrapes = running.flatMap((s) => s.scrapes).sort((a, b) => a.at - b.at);
    return { scrapes, result };
  } finally {
    for (const s of running) await s.stop();
  }
}
