/**
 * Abusive clients on 127.0.0.1 against lookout as `npm start` runs it (bin/lookout, the
 * default limits): a flood of parallel scrapes, then a slowloris client, oversized
 * headers and bodies and 1,000 idle connections — while a well-behaved client scrapes
 * every second over its kept-alive connection, as Prometheus does. Every one of its
 * scrapes is answered; lookout's RSS stays within its 80 MB target. Latencies are
 * printed, not asserted (no timed assertions in tests; bench/tls-scrape.ts compares).
 * Bounded: fixed counts, and every wait has a deadline.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { parseConfig } from '../src/config/load.js';
import { sampleValue } from './helpers/exposition.js';
import { makeTlsFiles, startLookoutWeb, type TlsFiles } from './helpers/tls-files.js';
import {
  REPO,
  eventually,
  freePort,
  startProcess,
  tempDir,
  type Running,
} from './helpers/procs.js';

const run = promisify(execFile);
const RSS_LIMIT = 80 * 1024 * 1024;
const IDLE = 1000;
const FLOOD_WORKERS = 64;
const FLOOD_EACH = 20;
const LIMITS = parseConfig({}).web;

interface Raw {
  socket: Socket;
  /** The first line lookout answered, '' if none. */
  first: () => string;
  sent: () => number;
  closed: Promise<number>;
}

/** A raw TCP client that records the status line it gets and when it is closed. */
function raw(port: number, onConnect?: (s: Socket) => void): Raw {
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
  socket.on('error', () => undefined);
  if (onConnect) socket.once('connect', () => onConnect(socket));
  const closed = new Promise<number>((r) => socket.once('close', () => r(performance.now() - t0)));
  return { socket, first: () => data.split('\r\n')[0] ?? '', sent: () => sent, closed };
}

async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) * 1024;
}

const q = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

describe('abuse: lookout keeps serving a well-behaved scraper', () => {
  let lookout: Running;
  let url: string;
  const goodLatencies: number[] = [];
  const goodStatuses: number[] = [];
  let maxRss = 0;
  let stopGood = false;
  let good: Promise<void>;
  let sampler: NodeJS.Timeout;

  before(async () => {
    const port = await freePort();
    lookout = await startProcess(
      join(REPO, 'bin/lookout'),
      ['serve', '--web.listen-address', `127.0.0.1:${port}`],
      { readyPath: '/healthz', port, dir: await tempDir('lookout-abuse-') },
    );
    url = `${lookout.url}/metrics`;
    sampler = setInterval(() => {
      void rss(lookout.child.pid!).then((v) => (maxRss = Math.max(maxRss, v)));
    }, 200);
    // Prometheus' way: one kept-alive connection, a scrape a second.
    const agent = new Agent({ connections: 1, keepAliveTimeout: 60_000 });
    good = (async () => {
      for (let i = 0; i < 90 && !stopGood; i++) {
        const t0 = performance.now();
        try {
          const res = await request(url, { dispatcher: agent, headersTimeout: 10_000 });
          await res.body.arrayBuffer();
          goodStatuses.push(res.statusCode);
        } catch {
          goodStatuses.push(0);
        }
        goodLatencies.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (performance.now() - t0))));
      }
      await agent.close();
    })();
    await eventually(async () => goodStatuses.length >= 2, 10_000, 'two good scrapes');
  });

  after(async () => {
    stopGood = true;
    await good;
    clearInterval(sampler);
    await lookout?.stop();
  });

  it(`a flood of ${FLOOD_WORKERS * FLOOD_EACH} scrapes from ${FLOOD_WORKERS} parallel clients is served`, async () => {
    const agent = new Agent({ connections: FLOOD_WORKERS });
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: FLOOD_WORKERS }, async () => {
        for (let i = 0; i < FLOOD_EACH; i++) {
          const res = await request(url, { dispatcher: agent });
          await res.body.arrayBuffer();
          statuses.push(res.statusCode);
        }
      }),
    );
    await agent.close();
    assert.equal(statuses.filter((s) => s === 200).length, FLOOD_WORKERS * FLOOD_EACH);
  });

  it('oversized headers get 431, an oversized body 413, a slowloris client 408 — and 1,000 idle connections are capped and timed out', async () => {
    const port = lookout.port;
    // Slowloris: a header byte a second, never finishing.
    const line = 'GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ';
    let i = 0;
    const slow = raw(port, (s) => {
      const t = setInterval(() => {
        if (s.destroyed) clearInterval(t);
        else s.write(line[i++ % line.length]!);
      }, 1000);
      s.once('close', () => clearInterval(t));
    });
    const bigHeader = Array.from({ length: 5 }, () =>
      raw(port, (s) =>
        s.write(
          `GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(LIMITS.max_header_bytes + 1024)}\r\n\r\n`,
        ),
      ),
    );
    const bigBody = Array.from({ length: 5 }, () =>
      raw(port, (s) =>
        s.write(
          `POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n${'a'.repeat(65536)}`,
        ),
      ),
    );
    for (const r of [...bigHeader, ...bigBody]) await r.closed;
    for (const r of bigHeader)
      assert.equal(r.first(), 'HTTP/1.1 431 Request Header Fields Too Large');
    for (const r of bigBody) assert.equal(r.first(), 'HTTP/1.1 413 Payload Too Large');

    const idle = Array.from({ length: IDLE }, () => raw(port));
    const closedIn = await Promise.all(idle.map((r) => r.closed));
    const refused = idle.filter((r) => r.first().startsWith('HTTP/1.1 503'));
    const timedOut = idle.filter((r) => r.first().startsWith('HTTP/1.1 408'));
    // The cap leaves room for the good scraper's and slowloris' connections.
    assert.ok(refused.length >= IDLE - LIMITS.max_connections, `${refused.length} refused`);
    assert.equal(refused.length + timedOut.length, IDLE, 'each idle connection got 503 or 408');
    const slowMs = await slow.closed;
    assert.equal(slow.first(), 'HTTP/1.1 408 Request Timeout');
    console.log(
      `# abuse: ${refused.length} idle connections refused (503) at max_connections=${LIMITS.max_connections}, ` +
        `${timedOut.length} timed out (408) after at most ${(Math.max(...closedIn) / 1000).toFixed(1)} s; ` +
        `slowloris cut after ${(slowMs / 1000).toFixed(1)} s and ${slow.sent()} bytes (header_timeout ${LIMITS.header_timeout / 1000} s)`,
    );
    // Logged, but at a rate limit: one line per kind per 10 s, the rest counted.
    const refusedLines = lookout.output().match(/web\.max_connections reached/g) ?? [];
    assert.ok(refusedLines.length >= 1 && refusedLines.length <= 5, `${refusedLines.length} lines`);
  });

  it('every well-behaved scrape was answered, and RSS stayed ≤ 80 MB', async () => {
    // A few more scrapes after the abuse, then the figures.
    const n = goodStatuses.length;
    await eventually(async () => goodStatuses.length >= n + 2, 10_000, 'scrapes after the abuse');
    stopGood = true;
    await good;
    const sorted = [...goodLatencies].sort((a, b) => a - b);
    console.log(
      `# abuse: well-behaved scrapes ${goodStatuses.length}, p50 ${q(sorted, 0.5).toFixed(2)} ms, ` +
        `p99 ${q(sorted, 0.99).toFixed(2)} ms, max ${sorted.at(-1)!.toFixed(2)} ms; ` +
        `lookout max RSS ${(maxRss / 1048576).toFixed(1)} MB`,
    );
    assert.deepEqual(
      goodStatuses.filter((s) => s !== 200),
      [],
      'scrapes not answered 200',
    );
    assert.ok(maxRss > 0 && maxRss <= RSS_LIMIT, `max RSS ${(maxRss / 1048576).toFixed(1)} MB`);
    // And a new client still gets in.
    const res = await request(url);
    await res.body.arrayBuffer();
    assert.equal(res.statusCode, 200);
  });
});

describe('abuse behind TLS and basic auth: a password flood and 1,000 idle TLS connections', () => {
  let lookout: Running;
  let files: TlsFiles;
  const PASSWORD = 'right-password';
  const auth = (pw: string) => `Basic ${Buffer.from(`prometheus:${pw}`).toString('base64')}`;

  before(async () => {
    files = await makeTlsFiles();
    const { stdout } = await run('htpasswd', ['-nbBC', '10', '', PASSWORD]);
    const web = join(files.dir, 'web.yml');
    await writeFile(
      web,
      `tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: ${stdout.trim().replace(/^:/, '')}\n`,
    );
    lookout = await startLookoutWeb(web, { ca: files.ca });
  });
  after(async () => {
    await lookout?.stop();
  });

  it('the kept-alive scraper with the right password is answered throughout; RSS ≤ 80 MB', async () => {
    const ca = await readFile(files.ca, 'utf8');
    const url = `${lookout.url}/metrics`;
    let maxRss = 0;
    const sampler = setInterval(() => {
      void rss(lookout.child.pid!).then((v) => (maxRss = Math.max(maxRss, v)));
    }, 200);
    const goodAgent = new Agent({ connections: 1, keepAliveTimeout: 60_000, connect: { ca } });
    const statuses: number[] = [];
    const latencies: number[] = [];
    let stop = false;
    const good = (async () => {
      for (let i = 0; i < 40 && !stop; i++) {
        const t0 = performance.now();
        try {
          const res = await request(url, {
            dispatcher: goodAgent,
            headers: { authorization: auth(PASSWORD) },
            headersTimeout: 10_000,
          });
          await res.body.arrayBuffer();
          statuses.push(res.statusCode);
        } catch {
          statuses.push(0);
        }
        latencies.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (performance.now() - t0))));
      }
    })();
    try {
      await eventually(async () => statuses.length >= 2, 10_000, 'two good scrapes');
      // 400 wrong passwords from 20 parallel clients: each costs a bcrypt, one at a time.
      const floodAgent = new Agent({ connections: 20, connect: { ca } });
      const flood: number[] = [];
      await Promise.all(
        Array.from({ length: 20 }, async (_, w) => {
          for (let i = 0; i < 20; i++) {
            const res = await request(url, {
              dispatcher: floodAgent,
              headers: { authorization: auth(`guess-${w}-${i}`) },
            });
            await res.body.arrayBuffer();
            flood.push(res.statusCode);
          }
        }),
      );
      await floodAgent.close();
      assert.equal(flood.filter((s) => s !== 401 && s !== 503).length, 0, `${flood}`);
      // 1,000 TCP connections that never start their handshake.
      const idle = Array.from({ length: IDLE }, () => raw(lookout.port));
      await Promise.all(idle.map((r) => r.closed));
      await eventually(async () => statuses.length >= 4, 10_000, 'scrapes after the abuse');
    } finally {
      stop = true;
      await good;
      await goodAgent.close();
      clearInterval(sampler);
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(
      `# abuse (TLS + basic auth): well-behaved scrapes ${statuses.length}, p50 ${q(sorted, 0.5).toFixed(2)} ms, ` +
        `p99 ${q(sorted, 0.99).toFixed(2)} ms, max ${sorted.at(-1)!.toFixed(2)} ms; lookout max RSS ${(maxRss / 1048576).toFixed(1)} MB`,
    );
    assert.deepEqual(
      statuses.filter((s) => s !== 200),
      [],
    );
    assert.ok(maxRss > 0 && maxRss <= RSS_LIMIT, `max RSS ${(maxRss / 1048576).toFixed(1)} MB`);
    const text = await (
      await request(url, {
        dispatcher: new Agent({ connect: { ca } }),
        headers: { authorization: auth(PASSWORD) },
      })
    ).body.text();
    const wrong = sampleValue(text, 'lookout_http_auth_failures_total', {
      reason: 'wrong_credentials',
    });
    assert.ok((wrong ?? 0) >= 1, `wrong_credentials ${wrong}`);
    console.log(`# abuse (TLS + basic auth): wrong_credentials counted ${wrong}`);
  });
});
