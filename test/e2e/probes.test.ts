/**
 * A probe fault through the whole alerting chain on real parts: a site behind a real nginx
 * starts answering 500 → lookout's probe fails twice in a row → Prometheus (a copy of
 * rules/*.yml, `for:` scaled down) fires ProbeFailing → Alertmanager → the critical email
 * and Slack message with the exact subject; the site answers 200 again → both resolved
 * notices. test/helpers/alertchain.ts holds the chain.
 *
 * Needs `npm run build`. Takes about a minute.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { AlertChain } from '../helpers/alertchain.js';
import { startNginx, type Nginx } from '../helpers/nginx.js';

describe('probe failing end to end: lookout → Prometheus → Alertmanager → email + Slack', () => {
  let chain: AlertChain | undefined;
  let nginx: Nginx | undefined;
  let upstream: Server | undefined;
  const site = { status: 200 };

  before(async () => {
    upstream = createServer((_, res) => {
      res.statusCode = site.status;
      res.end(`status ${site.status}\n`);
    });
    await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as { port: number }).port;
    nginx = await startNginx({
      locations: `location = /shop { proxy_pass http://127.0.0.1:${port}; }`,
    });
    // Only the probes: the host's own alerts, with `for:` shortened, would fire on a
    // machine shared with other tests and are not what this test is about.
    chain = await AlertChain.start({
      name: 'e2e-probes',
      forScale: 1 / 60,
      lookoutConfig: [
        'collectors:',
        '  host: { enabled: false }',
        '  filesystem: { enabled: false }',
        '  processes: { enabled: false }',
        '  probes:',
        '    interval: 1s',
        '    timeout: 1s',
        '    targets:',
        `      - { kind: http, name: shop, url: "http://127.0.0.1:${nginx.port}/shop" }`,
        '',
      ].join('\n'),
    });
    assert.ok(
      chain.timings.some((r) => r.alert === 'ProbeFailing' && r.severity === 'critical'),
      'rules/probes.yml: no critical ProbeFailing',
    );
  });

  after(async () => {
    await chain?.stop();
    await nginx?.stop();
    upstream?.close();
  });

  test(
    'the site answers 500 twice in a row: ProbeFailing critical email and Slack, then resolved',
    { timeout: 180_000 },
    async (t) => {
      const faultAt = Date.now();
      site.status = 500;
      await chain!.criticalCycle(t, {
        name: 'probe 500',
        alertname: 'ProbeFailing',
        labels: { target: 'shop', kind: 'http' },
        faultAt,
        fix: async () => {
          site.status = 200;
        },
      });
    },
  );
});
