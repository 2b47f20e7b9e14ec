/**
 * Abusive clients on 127.0.0.1 against lookout as `npm start` runs it (bin/lookout, the
 * default limits), phase after phase (test/helpers/abuse.ts, shared with
 * bench/abuse.ts): a flood of parallel scrapes, oversized headers, oversized bodies, a
 * slowloris client, 1,000 idle connections — while a well-behaved scraper in its own
 * process (curl, one kept-alive connection, a scrape a second, as Prometheus) keeps
 * scraping. Each abuse gets its answer, every well-behaved scrape is answered 200 on the
 * one connection, and lookout's RSS stays within its 80 MB target. Latencies are printed
 * per phase, never asserted (no timed assertions in tests; `npm run bench:abuse` judges
 * them against node_exporter). Bounded: fixed counts, every phase has a deadline.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { parseConfig } from '../src/collectors/config.js';
import {
  IDLE,
  RSS_TARGET_BYTES,
  formatFigures,
  perPhase,
  plainAbuse,
  sampleRss,
  scrapedThrough,
  tlsAbuse,
  type Scrape,
} from './helpers/abuse.js';
import { sampleValue } from './helpers/exposition.js';
import { makeTlsFiles, startLookoutWeb, writeTlsAuthWebConfig } from './helpers/tls-files.js';
import { REPO, freePort, startProcess, tempDir, type Running } from './helpers/procs.js';

const LIMITS = parseConfig({}).web;
const mb = (b: number) => (b / 1048576).toFixed(1);

/** Every well-behaved scrape answered 200, all on the one connection curl opened. */
function assertScraperServed(scrapes: Scrape[]): void {
  assert.ok(scrapes.length >= 6, `${scrapes.length} scrapes`);
  assert.deepEqual(
    scrapes.filter((s) => s.status !== 200).map((s) => s.status),
    [],
    'well-behaved scrapes not answered 200',
  );
  assert.equal(
    scrapes.reduce((a, s) => a + s.connects, 0),
    1,
    'the scraper kept its one connection',
  );
}

describe('abuse: lookout keeps serving a well-behaved scraper', () => {
  let lookout: Running;

  before(async () => {
    const port = await freePort();
    lookout = await startProcess(
      join(REPO, 'bin/lookout'),
      ['serve', '--web.listen-address', `127.0.0.1:${port}`],
      { readyPath: '/healthz', port, dir: await tempDir('lookout-abuse-') },
    );
  });
  after(async () => {
    await lookout?.stop();
  });

  it('a scrape flood is served, oversized headers get 431, oversized bodies 413, a slowloris 408, 1,000 idle connections 503 or 408; every well-behaved scrape is 200 and RSS ≤ 80 MB', async () => {
    const rss = sampleRss(lookout.child.pid!);
    const { scrapes, result: r } = await scrapedThrough(`${lookout.url}/metrics`, [], () =>
      plainAbuse({
        port: lookout.port,
        url: `${lookout.url}/metrics`,
        maxHeaderBytes: LIMITS.max_header_bytes,
      }),
    );
    rss.stop();
    console.log(formatFigures(perPhase(Object.values(r), scrapes), '# abuse: '));
    console.log(
      `# abuse: lookout max RSS ${mb(rss.max())} MB (anonymous ${mb(rss.atMax().anon)}, file pages ${mb(rss.atMax().file)})`,
    );

    // The flood: every scrape answered 200 (lookout has no in-flight cap; a connection has
    // at most one scrape waiting in the paced queue, the rest wait in Node behind it).
    const flood = r.flood.result;
    assert.ok(flood.length > 0);
    assert.deepEqual(
      flood.filter((s) => s !== 200),
      [],
      'flood scrapes not answered 200',
    );
    assert.ok(r.headers.result.length > 0 && r.bodies.result.length > 0);
    for (const first of r.headers.result) {
      assert.equal(first, 'HTTP/1.1 431 Request Header Fields Too Large');
    }
    for (const first of r.bodies.result) assert.equal(first, 'HTTP/1.1 413 Payload Too Large');

    const slow = r.slowloris.result;
    assert.equal(slow.cut, 0, 'lookout cut the slowloris client before the phase deadline');
    assert.equal(slow.first, 'HTTP/1.1 408 Request Timeout');

    const idle = r.idle.result;
    assert.equal(idle.cut, 0, 'lookout closed every idle connection before the phase deadline');
    const refused = idle.first.filter((f) => f.startsWith('HTTP/1.1 503')).length;
    const timedOut = idle.first.filter((f) => f.startsWith('HTTP/1.1 408')).length;
    // The cap leaves room for the well-behaved scraper's connection.
    assert.ok(refused >= IDLE - LIMITS.max_connections, `${refused} refused`);
    assert.equal(refused + timedOut, IDLE, 'each idle connection got 503 or 408');
    console.log(
      `# abuse: ${refused} idle connections refused (503) at max_connections=${LIMITS.max_connections}, ` +
        `${timedOut} timed out (408) after at most ${(idle.maxClosedMs / 1000).toFixed(1)} s; ` +
        `slowloris cut after ${(slow.ms / 1000).toFixed(1)} s and ${slow.sent} bytes (header_timeout ${LIMITS.header_timeout / 1000} s)`,
    );
    // Logged, but at a rate limit: one line per kind per 10 s, the rest counted.
    const refusedLines = lookout.output().match(/web\.max_connections reached/g) ?? [];
    assert.ok(refusedLines.length >= 1 && refusedLines.length <= 5, `${refusedLines.length} lines`);

    assertScraperServed(scrapes);
    assert.ok(rss.max() > 0 && rss.max() <= RSS_TARGET_BYTES, `max RSS ${mb(rss.max())} MB`);
    // And a new client still gets in.
    const res = await request(`${lookout.url}/metrics`);
    await res.body.arrayBuffer();
    assert.equal(res.statusCode, 200);
  });
});

describe('abuse behind TLS and basic auth: a password flood and 1,000 connections that never handshake', () => {
  let lookout: Running;
  let ca: string;
  let caFile: string;
  const USER = 'prometheus';
  const PASSWORD = 'right-password';
  const auth = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

  before(async () => {
    const files = await makeTlsFiles();
    const web = await writeTlsAuthWebConfig(files, USER, PASSWORD);
    caFile = files.ca;
    ca = await readFile(files.ca, 'utf8');
    lookout = await startLookoutWeb(web, { ca: files.ca });
  });
  after(async () => {
    await lookout?.stop();
  });

  it('wrong passwords get 401 (or 503 past the compare queue) and are counted; unfinished handshakes are closed; every well-behaved scrape is 200 and RSS ≤ 80 MB', async () => {
    const url = `${lookout.url}/metrics`;
    const rss = sampleRss(lookout.child.pid!);
    const { scrapes, result: r } = await scrapedThrough(
      url,
      ['--cacert', caFile, '-u', `${USER}:${PASSWORD}`],
      () =>
        tlsAbuse(
          {
            port: lookout.port,
            url,
            ca,
            authorization: auth,
            maxHeaderBytes: LIMITS.max_header_bytes,
          },
          USER,
        ),
    );
    rss.stop();
    console.log(formatFigures(perPhase(Object.values(r), scrapes), '# abuse (TLS + basic auth): '));
    console.log(
      `# abuse (TLS + basic auth): lookout max RSS ${mb(rss.max())} MB (anonymous ${mb(rss.atMax().anon)}, file pages ${mb(rss.atMax().file)})`,
    );

    const guesses = r.passwords.result;
    assert.deepEqual(
      guesses.filter((s) => s !== 401 && s !== 503),
      [],
      'wrong passwords answered other than 401 or 503',
    );
    const unauthorized = guesses.filter((s) => s === 401).length;
    assert.ok(unauthorized >= 1, 'some wrong passwords were compared and refused');
    assert.equal(r.handshakes.result.cut, 0, 'lookout closed every unfinished handshake');

    assertScraperServed(scrapes);
    assert.ok(rss.max() > 0 && rss.max() <= RSS_TARGET_BYTES, `max RSS ${mb(rss.max())} MB`);

    const agent = new Agent({ connect: { ca } });
    const text = await (
      await request(url, { dispatcher: agent, headers: { authorization: auth } })
    ).body.text();
    await agent.close();
    const wrong = sampleValue(text, 'lookout_http_auth_failures_total', {
      reason: 'wrong_credentials',
    });
    // Every 401 was one counted failure, and every 503 (the compare queue full) another.
    assert.equal(wrong, unauthorized, `wrong_credentials ${wrong}, 401s ${unauthorized}`);
    const busy = guesses.filter((st) => st === 503).length;
    const tooMany = sampleValue(text, 'lookout_http_auth_failures_total', {
      reason: 'too_many_attempts',
    });
    assert.equal(tooMany, busy, `too_many_attempts ${tooMany}, 503s ${busy}`);
    console.log(
      `# abuse (TLS + basic auth): ${guesses.length} wrong passwords: ${unauthorized} 401 (counted ${wrong}), ` +
        `${guesses.filter((s) => s === 503).length} 503`,
    );
  });
});
