/**
 * `/runbooks`: the built lookout serves docs/runbooks.md as a page with an anchor for
 * every runbook_url the rules (and alert-test) carry; a missing file is a clear 404,
 * logged once. The file itself: one heading per rules file in the files' order, under it
 * that file's alerts in the order it declares them, each section in four set parts.
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
import { ALERT_NAME, syntheticAlert } from '../src/alerttest.js';
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

/** Each rules file's area (`host` for rules/host.yml) and its alerts in declaration order. */
async function rulesByArea(): Promise<Array<{ area: string; alerts: string[] }>> {
  const files = (await readdir(join(REPO, 'rules'))).filter((n) => n.endsWith('.yml')).sort();
  const out: Array<{ area: string; alerts: string[] }> = [];
  for (const f of files) {
    const doc = load(await readFile(join(REPO, 'rules', f), 'utf8')) as {
      groups: Array<{ rules: Array<{ alert?: string }> }>;
    };
    const alerts = doc.groups.flatMap((g) => g.rules.flatMap((r) => (r.alert ? [r.alert] : [])));
    // A warning and a critical tier of one alert share one section.
    out.push({ area: f.replace(/\.yml$/, ''), alerts: [...new Set(alerts)] });
  }
  return out;
}

interface Section {
  level: number;
  title: string;
  /** The section's lines outside fenced code blocks, up to the next heading. */
  prose: string[];
}

/** The headings of a Markdown file outside fenced code (a `# comment` there is code). */
function sections(markdown: string): Section[] {
  const out: Section[] = [];
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const f = /^\s*(`{3,}|~{3,})/.exec(line);
    if (f) {
      if (fence === undefined) fence = f[1]![0];
      else if (f[1]![0] === fence) fence = undefined;
      continue;
    }
    if (fence !== undefined) continue;
    const h = /^(#{1,6})\s+(.+?)\s*#*\s*$/.exec(line);
    if (h) out.push({ level: h[1]!.length, title: h[2]!, prose: [] });
    else out.at(-1)?.prose.push(line);
  }
  return out;
}

/** The four parts every alert section has, in this order, as its paragraphs open. */
const PARTS = ['What it means.', 'What to check.', 'What to do.', 'Silence or override.'];

describe('docs/runbooks.md', () => {
  test("groups the sections under one heading per rules file, in the files' order, each alert in the order its file declares it", async () => {
    const md = sections(await readFile(join(REPO, 'docs/runbooks.md'), 'utf8'));
    const found: Array<{ area: string; alerts: string[] }> = [];
    for (const s of md) {
      if (s.level === 2) found.push({ area: s.title, alerts: [] });
      else if (s.level === 3) {
        const area = found.at(-1);
        assert.ok(area, `### ${s.title} comes before any area heading`);
        area.alerts.push(s.title);
      } else assert.equal(s.level, 1, `${'#'.repeat(s.level)} ${s.title}: not an area or alert`);
    }
    // The alert `lookout alert-test` sends has no rule: it closes lookout's area.
    const expected = (await rulesByArea()).map(({ area, alerts }) => ({
      area,
      alerts: area === 'lookout' ? [...alerts, ALERT_NAME] : alerts,
    }));
    assert.deepEqual(found, expected);
  });

  test('every alert section has What it means, What to check, What to do, Silence or override, in that order', async () => {
    const md = sections(await readFile(join(REPO, 'docs/runbooks.md'), 'utf8'));
    const alerts = md.filter((s) => s.level === 3);
    assert.ok(alerts.length > 20, `found ${alerts.length} alert sections`);
    const bad: string[] = [];
    for (const s of alerts) {
      const parts = s.prose.flatMap((l) => /^\*\*([^*]+)\*\*/.exec(l)?.[1] ?? []);
      const order = parts.filter((p) => PARTS.includes(p));
      if (order.join('|') !== PARTS.join('|')) bad.push(`${s.title}: ${order.join(' / ')}`);
    }
    assert.deepEqual(bad, [], `sections without the four parts, once each and in order`);
  });
});

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
