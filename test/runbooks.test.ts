/**
 * `/runbooks`: the built lookout serves docs/runbooks.md as a page with an anchor for
 * every runbook_url the rules (and alert-test) carry; a missing file is a clear 404,
 * logged once.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Koa from 'koa';
import { load } from 'js-yaml';
import { REPO, startLookout, type Running } from './helpers/procs.js';
import { renderRunbooks, runbooksHandler } from '../src/exporter/runbooks.js';
import { syntheticAlert } from '../src/alerttest.js';
import { createLogger } from '../src/lib/log.js';

/** Every runbook_url in rules/*.yml, as written. */
async function ruleRunbookUrls(): Promise<string[]> {
  const urls = new Set<string>();
  for (const f of (await readdir(join(REPO, 'rules'))).filter((n) => n.endsWith('.yml'))) {
    const text = await readFile(join(REPO, 'rules', f), 'utf8');
    for (const m of JSON.stringify(load(text)).matchAll(/"runbook_url":"([^"]+)"/g)) {
      urls.add(m[1]!);
    }
  }
  return [...urls];
}

/** The ids of an HTML page. */
function ids(html: string): string[] {
  return [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]!);
}

describe('/runbooks on the built lookout', () => {
  let lookout: Running;
  before(async () => {
    assert.ok(existsSync(join(REPO, 'dist/cli.js')), 'run `npm run build` first');
    lookout = await startLookout();
  });
  after(async () => {
    await lookout?.stop();
  });

  test('serves HTML with an anchor for every runbook_url of the rules and alert-test', async () => {
    const res = await fetch(`${lookout.url}/runbooks`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const html = await res.text();
    const anchors = new Set(ids(html));
    const urls = [
      ...(await ruleRunbookUrls()),
      syntheticAlert('warning', 'h', new Date(0)).annotations.runbook_url,
    ];
    assert.ok(urls.length > 20, `found ${urls.length} runbook_urls`);
    for (const url of urls) {
      assert.match(url, /^\/runbooks#/, url);
      const anchor = url.slice('/runbooks#'.length);
      assert.ok(anchors.has(anchor), `${url}: no id="${anchor}" on the page`);
    }
    assert.equal(anchors.size, ids(html).length, 'every id on the page is unique');
    // `# comment` lines inside the shell blocks are code: the page has one h1, the title.
    assert.equal(html.match(/<h1[ >]/g)?.length, 1, 'one h1');
  });

  test('the landing page links to it', async () => {
    const html = await (await fetch(`${lookout.url}/`)).text();
    assert.match(html, /<a href="\/runbooks">/);
  });
});

describe('runbooksHandler', () => {
  test('a missing file is a 404 that names it, logged once however often it is asked for', async () => {
    const lines: string[] = [];
    const log = createLogger('info', {}, (l) => lines.push(l));
    const missing = join(REPO, 'no-such-dir/runbooks.md');
    const app = new Koa();
    const handler = runbooksHandler(log, missing);
    app.use(handler);
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/runbooks`;
      for (let i = 0; i < 3; i++) {
        const res = await fetch(url);
        assert.equal(res.status, 404);
        const text = await res.text();
        assert.ok(text.includes(missing), text);
        assert.match(text, /runbooks are not installed/);
      }
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0]!, /level=warn msg="runbooks unavailable" .*ENOENT/);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  test('heading ids follow GitHub: lower case, punctuation dropped, repeats numbered', async () => {
    const html = await renderRunbooks(
      '# Runbooks\n## HostCpuHigh\n## What to do: restart it!\n## HostCpuHigh\n',
    );
    assert.deepEqual(ids(html), [
      'runbooks',
      'hostcpuhigh',
      'what-to-do-restart-it',
      'hostcpuhigh-1',
    ]);
  });
});
