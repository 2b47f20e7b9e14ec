/**
 * AI spend over budget, end to end on real parts:
 *
 *   usage events POSTed to lookout's /api/v1/ai-usage (dist/, a $1 hourly budget for the
 *   host) → Prometheus (1 s scrape and evaluation, a copy of rules/*.yml with only `for:`
 *   and `keep_firing_for:` scaled 1/60) → Alertmanager (alertmanager.yml with only
 *   addresses, paths and group timings changed) → a real SMTP server and a Slack sink.
 *
 * $1.20 of usage over four services × models × sources ends as one AiSpendOverBudget
 * email to the cost channel's address and one Slack message to its channel, each carrying
 * the breakdown (top services, models and sources by spend, and the hour before), and
 * nothing to on-call; the budget raised in lookout's config and lookout restarted, the
 * resolved notices follow on the same channel.
 *
 * Needs `npm run build`. Takes about a minute.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AlertChain, DELIVERY_MS, QUIET_MS, color, title } from '../helpers/alertchain.js';
import { aicostConfig, postAccepted, usageEvent } from '../helpers/aicost-alerts.js';
import { eventually, promQuery, tempDir } from '../helpers/procs.js';
import type { SlackMessage } from '../helpers/sinks.js';

const COST_EMAIL = 'ai-cost@example.com';
const COST_CHANNEL = '#ai-cost';

/** Usage per service, model and source: $0.90 chat, $0.30 batch; $0.80 big, $0.40 small;
 *  $0.70 web, $0.50 worker; $1.20 in all, over the $1 hourly budget. */
const SPEND = [
  { labels: { service: 'chat', model: 'big', source: 'web' }, usd: 0.6 },
  { labels: { service: 'chat', model: 'small', source: 'worker' }, usd: 0.3 },
  { labels: { service: 'batch', model: 'big', source: 'worker' }, usd: 0.2 },
  { labels: { service: 'batch', model: 'small', source: 'web' }, usd: 0.1 },
];
/** The breakdown the description must carry, top first, in dollars. */
const BREAKDOWN: Array<[string, Array<[string, number]>]> = [
  [
    'By service in the last hour',
    [
      ['chat', 0.9],
      ['batch', 0.3],
    ],
  ],
  [
    'By model',
    [
      ['big', 0.8],
      ['small', 0.4],
    ],
  ],
  [
    'By source',
    [
      ['web', 0.7],
      ['worker', 0.5],
    ],
  ],
];

/**
 * The breakdown in a message: each list in order, each figure the spend or up to 15 %
 * over it (increase() extrapolates a window's change over its last second or so).
 */
function assertBreakdown(text: string): void {
  for (const [head, items] of BREAKDOWN) {
    const item = '[^,$]+ \\$\\d+\\.\\d\\d';
    const m = new RegExp(`${head}: (${item}(?:, ${item})*)\\.`).exec(text);
    assert.ok(m, `"${head}: ..." in\n${text}`);
    const got = m[1]!.split(', ').map((p) => {
      const [name = '', usd = ''] = p.split(' $');
      return [name, Number(usd)] as const;
    });
    assert.deepEqual(
      got.map(([n]) => n),
      items.map(([n]) => n),
      `${head}: the order, top first`,
    );
    got.forEach(([name, usd], i) => {
      const want = items[i]![1];
      assert.ok(
        usd >= want - 0.005 && usd <= want * 1.15,
        `${head}: ${name} $${usd}, spent $${want}`,
      );
    });
  }
}

describe('AI spend over budget: usage → Prometheus → Alertmanager → the cost channel (email + Slack)', () => {
  let chain: AlertChain;
  let dir: string;

  before(async () => {
    dir = await tempDir('lookout-aicost-e2e-');
    chain = await AlertChain.start({
      name: 'aicost',
      forScale: 1 / 60,
      lookoutConfig: await aicostConfig(dir, { budgets: [{ period: 'hour', usd: 1 }] }),
    });
  });

  after(async () => {
    await chain?.stop();
  });

  test('over budget: one email and one Slack message to the cost channel with the breakdown, none to on-call; resolved once the budget is raised', async (t) => {
    const lookoutUrl = () => `http://${chain.instance}`;
    const sel = `instance="${chain.instance}"`;
    // Each series first with a tenth of a cent: increase() cannot see what a series holds
    // at its first scrape, so the spend that counts comes after Prometheus has seen them.
    await postAccepted(
      lookoutUrl(),
      SPEND.map((s) => usageEvent({ ...s.labels, cost_usd: 0.001 })),
    );
    await eventually(
      async () =>
        (await promQuery(chain.promUrl, `lookout_ai_cost_usd_total{${sel}}`)).length ===
        SPEND.length,
      20_000,
      'Prometheus to scrape the first usage of each series',
    );
    const budget = await promQuery(
      chain.promUrl,
      `lookout_ai_budget_usd{${sel},period="hour",service="*"}`,
    );
    assert.equal(budget[0]?.value[1], '1', 'the hourly budget gauge from the config');
    // 20 s of samples before the spend, so increase() extrapolates it by a few % at most.
    await new Promise((r) => setTimeout(r, 20_000));

    const faultAt = Date.now();
    // Many events, as a client sends them: one alert for the breach, not one per request.
    const events = SPEND.flatMap((s) =>
      Array.from({ length: 10 }, () => usageEvent({ ...s.labels, cost_usd: s.usd / 10 })),
    );
    await postAccepted(lookoutUrl(), events);

    const summary = `AI spend on ${chain.instance} is over its hourly budget`;
    const subject = `[LOOKOUT] 🟡 WARNING: AiSpendOverBudget — ${summary}`;
    const mail = await chain.smtp.waitFor((m) => m.subject === subject, DELIVERY_MS, subject);
    chain.record(t, 'over budget', 'email', faultAt, mail);
    assert.deepEqual(mail.to, [COST_EMAIL]);
    for (const body of [mail.text, mail.html]) {
      assert.match(body, /over the hourly budget of \$1\.00\./);
      assert.match(body, /in the last hour is \$1\.[2-4]\d, over/);
      assert.match(body, /The hour before: (no data|\$\d+\.\d\d)\./);
      assertBreakdown(body);
    }
    const slackTitle = subject.replace('[LOOKOUT] ', '');
    const isCost = (m: SlackMessage) => m.body.channel === COST_CHANNEL;
    const amber = await chain.slack.waitFor(
      (m) => isCost(m) && title(m) === slackTitle,
      DELIVERY_MS,
      'the AiSpendOverBudget Slack message in the cost channel',
    );
    chain.record(t, 'over budget', 'slack', faultAt, amber);
    assert.equal(color(amber), 'warning');
    assertBreakdown(amber.body.attachments?.[0]?.text ?? '');

    // Still firing: no second message, and nothing to on-call's email or Slack.
    await new Promise((r) => setTimeout(r, QUIET_MS));
    const ours = (s: string) => s.includes('AiSpendOverBudget');
    assert.equal(chain.smtp.received.filter((m) => ours(m.subject)).length, 1, 'one email');
    assert.deepEqual(
      chain.smtp.received.filter((m) => ours(m.subject)).flatMap((m) => m.to),
      [COST_EMAIL],
    );
    assert.deepEqual(
      chain.slack.received.filter((m) => ours(title(m))).map((m) => m.body.channel),
      [COST_CHANNEL],
      'one Slack message, in the cost channel only',
    );

    // The fix: a budget that covers the spend, in lookout's config; lookout restarted,
    // its counters carried on from its store.
    const configFile = join(chain.lookoutDir, 'lookout.yml');
    const raised = (await readFile(configFile, 'utf8')).replace('"usd":1}', '"usd":1000}');
    assert.notEqual(raised, await readFile(configFile, 'utf8'), 'the budget in the config');
    await writeFile(configFile, raised);
    const fixedAt = Date.now();
    await chain.lookout?.stop();
    chain.lookout = await chain.startLookout();
    const total = await eventually(
      async () => {
        const v = await promQuery(chain.promUrl, `sum(lookout_ai_cost_usd_total{${sel}})`);
        const b = await promQuery(chain.promUrl, `lookout_ai_budget_usd{${sel},period="hour"}`);
        return b[0]?.value[1] === '1000' ? Number(v[0]?.value[1]) : undefined;
      },
      20_000,
      'Prometheus to scrape the restarted lookout with the raised budget',
    );
    assert.ok(Math.abs(total - 1.204) < 1e-6, `the counters survived the restart: ${total}`);

    const resolved = `[LOOKOUT] ✅ RESOLVED: AiSpendOverBudget — ${summary}`;
    const resolvedMail = await chain.smtp.waitFor(
      (m) => m.subject === resolved,
      DELIVERY_MS,
      resolved,
    );
    chain.record(t, 'over budget', 'resolved email', fixedAt, resolvedMail);
    assert.deepEqual(resolvedMail.to, [COST_EMAIL]);
    const green = await chain.slack.waitFor(
      (m) => isCost(m) && title(m) === resolved.replace('[LOOKOUT] ', ''),
      DELIVERY_MS,
      'the resolved AiSpendOverBudget Slack message in the cost channel',
    );
    chain.record(t, 'over budget', 'resolved slack', fixedAt, green);
    assert.equal(color(green), 'good');
  });
});
