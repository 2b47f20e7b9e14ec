/**
 * Collectors' routes with their own door, through a real lookout process
 * (test/fixtures/routes/serve.ts: the CLI plus a test ingest collector) behind a
 * web-config file with basic auth: not mounted without a token, 401 for a missing or
 * wrong token and for the scrape credentials, the token opening nothing else, per-item
 * batch answers, 503 while the collector reports a fault, and the startup errors of a
 * token that is configured but cannot be used.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sampleValue } from './helpers/exposition.js';
import {
  REPO,
  eventually,
  freePort,
  startProcess,
  tempDir,
  type Running,
} from './helpers/procs.js';
import { bcryptHash } from './helpers/tls-files.js';

const script = join(REPO, 'test/fixtures/routes/serve.ts');
const tsx = import.meta.resolve('tsx');
const USER = 'prometheus';
const PASSWORD = 'correct horse battery staple';
const TOKEN = 'ingest-token-5d0e8c1b9a7f3e2d';
const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

let hash: string;
before(async () => {
  hash = await bcryptHash(PASSWORD);
});

/** Writes the config and a web-config file with basic auth into a fresh directory. */
async function prepare(collector: string): Promise<{ dir: string; args: string[] }> {
  const dir = await tempDir('lookout-routes-');
  await writeFile(
    join(dir, 'lookout.yml'),
    `collectors:\n  host:\n    enabled: false\n  ingesttest:\n    enabled: true\n${collector}`,
  );
  await writeFile(join(dir, 'web.yml'), `basic_auth_users:\n  ${USER}: ${hash}\n`);
  const args = ['--import', tsx, script, 'serve', '--config', join(dir, 'lookout.yml')];
  return { dir, args: [...args, '--web.config.file', join(dir, 'web.yml')] };
}

async function start(collector: string, env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const { dir, args } = await prepare(collector);
  const port = await freePort();
  return startProcess(process.execPath, [...args, '--web.listen-address', `127.0.0.1:${port}`], {
    readyPath: '/healthz',
    port,
    dir,
    env,
  });
}

/** A start that must fail: its exit code and what it printed. */
async function refused(collector: string, env: NodeJS.ProcessEnv = {}) {
  const { dir, args } = await prepare(collector);
  const child = spawn(process.execPath, [...args, '--web.listen-address', '127.0.0.1:0'], {
    cwd: dir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  return { code, out };
}

const batch = (items: { id: string; n: number }[]) => JSON.stringify({ items });

function post(lookout: Running, authorization: string | undefined, body = batch([])) {
  return fetch(`${lookout.url}/api/v1/test-ingest`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(authorization === undefined ? {} : { authorization }),
    },
    body,
  });
}

describe('a route without its token configured', () => {
  let lookout: Running;
  before(async () => {
    lookout = await start('');
  });
  after(async () => {
    await lookout?.stop();
  });

  it('is not mounted: the scrape credentials get 404 (a bearer token meets basic auth and its 401); the log and the landing page say what to set', async () => {
    for (const auth of [basic, `Bearer ${TOKEN}`]) {
      const res = await post(lookout, auth);
      // Basic auth still guards what is not a mounted route: a bearer token gets its 401.
      assert.equal(res.status, auth === basic ? 404 : 401, auth.split(' ')[0]);
    }
    const hint =
      'no token configured; set collectors.ingesttest.ingest_token_file or collectors.ingesttest.ingest_token_env';
    assert.match(
      lookout.output(),
      new RegExp(
        `msg="route off" collector=ingesttest route="POST /api/v1/test-ingest" why="${hint}"`,
      ),
    );
    const page = await (
      await fetch(`${lookout.url}/`, { headers: { authorization: basic } })
    ).text();
    assert.match(
      page,
      new RegExp(`<td>POST /api/v1/test-ingest</td><td>ingesttest</td><td>off: ${hint}</td>`),
    );
  });
});

describe('a route with its token in a file', () => {
  let lookout: Running;
  before(async () => {
    const dir = await tempDir('lookout-routes-token-');
    // As `echo TOKEN > file` writes it: the newline is not part of the token.
    await writeFile(join(dir, 'token'), `${TOKEN}\n`);
    lookout = await start(`    ingest_token_file: ${join(dir, 'token')}\n`);
    // The route answers once the collector has started.
    await eventually(
      async () => (await post(lookout, `Bearer ${TOKEN}`)).status === 200,
      20_000,
      'the route served',
    );
  });
  after(async () => {
    await lookout?.stop();
  });

  it('a missing token, a wrong one, and the scrape credentials get 401 with a Bearer challenge', async () => {
    const cases: [string, string | undefined, string][] = [
      ['no Authorization', undefined, 'Bearer realm="lookout"'],
      ['a wrong token', `Bearer ${TOKEN}x`, 'Bearer realm="lookout", error="invalid_token"'],
      [
        'a prefix of the token',
        `Bearer ${TOKEN.slice(0, -1)}`,
        'Bearer realm="lookout", error="invalid_token"',
      ],
      ['the scrape credentials', basic, 'Bearer realm="lookout"'],
    ];
    for (const [what, auth, challenge] of cases) {
      const res = await post(lookout, auth, batch([{ id: `never-${what}`, n: 1 }]));
      assert.equal(res.status, 401, what);
      assert.equal(res.headers.get('www-authenticate'), challenge, what);
      assert.match(((await res.json()) as { error: string }).error, /bearer token/, what);
    }
    const metrics = await (
      await fetch(`${lookout.url}/metrics`, { headers: { authorization: basic } })
    ).text();
    assert.equal(sampleValue(metrics, 'test_ingest_items_total'), 0, 'nothing was stored');
  });

  it('the route token does not open /metrics or the landing page (basic auth guards them)', async () => {
    for (const path of ['/metrics', '/']) {
      const res = await fetch(`${lookout.url}${path}`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(res.status, 401, path);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Basic /, path);
    }
  });

  it('counts the refused tokens in lookout_http_auth_failures_total by reason', async () => {
    const metrics = await (
      await fetch(`${lookout.url}/metrics`, { headers: { authorization: basic } })
    ).text();
    const count = (reason: string) =>
      sampleValue(metrics, 'lookout_http_auth_failures_total', { reason });
    assert.ok((count('missing_token') ?? 0) >= 2, `missing_token ${count('missing_token')}`);
    assert.ok((count('wrong_token') ?? 0) >= 2, `wrong_token ${count('wrong_token')}`);
    assert.match(lookout.output(), /msg="authentication failed" reason=wrong_token/);
  });

  it('the right token gets per-item results: 200 all taken, 207 some rejected, 422 all rejected', async () => {
    const ok = await post(
      lookout,
      `Bearer ${TOKEN}`,
      batch([
        { id: 'a', n: 2 },
        { id: 'b', n: 3 },
      ]),
    );
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), {
      accepted: 2,
      duplicate: 0,
      rejected: 0,
      items: [
        { index: 0, id: 'a', result: 'accepted' },
        { index: 1, id: 'b', result: 'accepted' },
      ],
    });
    const mixed = await post(
      lookout,
      `Bearer ${TOKEN}`,
      batch([
        { id: 'a', n: 2 },
        { id: 'c', n: -1 },
        { id: 'd', n: 1 },
      ]),
    );
    assert.equal(mixed.status, 207);
    assert.deepEqual(await mixed.json(), {
      accepted: 1,
      duplicate: 1,
      rejected: 1,
      items: [
        { index: 0, id: 'a', result: 'duplicate' },
        { index: 1, id: 'c', result: 'rejected', reason: 'n must not be negative' },
        { index: 2, id: 'd', result: 'accepted' },
      ],
    });
    const none = await post(lookout, `Bearer ${TOKEN}`, batch([{ id: 'e', n: -5 }]));
    assert.equal(none.status, 422);
    assert.equal(((await none.json()) as { rejected: number }).rejected, 1);
    const metrics = await (
      await fetch(`${lookout.url}/metrics`, { headers: { authorization: basic } })
    ).text();
    assert.equal(sampleValue(metrics, 'test_ingest_items_total'), 6, 'a, b and d, each once');
  });

  it('answers 503 with Retry-After while the collector reports a fault, and serves again once it is healthy', async () => {
    lookout.child.kill('SIGUSR2');
    await eventually(
      async () => lookout.output().includes('msg="test fault on"'),
      5000,
      'the fault',
    );
    const closed = await post(lookout, `Bearer ${TOKEN}`, batch([{ id: 'f', n: 1 }]));
    assert.equal(closed.status, 503);
    assert.equal(closed.headers.get('retry-after'), '5');
    assert.match(
      ((await closed.json()) as { error: string }).error,
      /the ingesttest collector reports a fault/,
    );
    // Still the token first: a client without it learns nothing of the fault.
    assert.equal((await post(lookout, `Bearer ${TOKEN}x`)).status, 401);
    lookout.child.kill('SIGUSR2');
    await eventually(
      async () => lookout.output().includes('msg="test fault off"'),
      5000,
      'healthy',
    );
    const open = await post(lookout, `Bearer ${TOKEN}`, batch([{ id: 'f', n: 1 }]));
    assert.equal(open.status, 200);
    assert.equal(((await open.json()) as { accepted: number }).accepted, 1);
  });
});

describe('a route with its token in an environment variable', () => {
  it('takes that token and no other', async () => {
    const lookout = await start('    ingest_token_env: TEST_INGEST_TOKEN\n', {
      TEST_INGEST_TOKEN: TOKEN,
    });
    try {
      await eventually(
        async () => (await post(lookout, `Bearer ${TOKEN}`)).status === 200,
        20_000,
        'the route served',
      );
      assert.equal((await post(lookout, `Bearer ${TOKEN}x`)).status, 401);
    } finally {
      await lookout.stop();
    }
  });
});

describe('a token configured but unusable stops start-up, naming the setting (exit 2)', () => {
  const cases: [string, (dir: string) => Promise<string>, NodeJS.ProcessEnv, RegExp][] = [
    [
      'a missing file',
      async (dir) => `    ingest_token_file: ${join(dir, 'nothing')}\n`,
      {},
      /collectors\.ingesttest\.ingest_token_file: cannot read .*nothing: ENOENT/,
    ],
    [
      'an empty file',
      async (dir) => {
        await writeFile(join(dir, 'empty'), '\n');
        return `    ingest_token_file: ${join(dir, 'empty')}\n`;
      },
      {},
      /collectors\.ingesttest\.ingest_token_file: .*empty is empty/,
    ],
    [
      'a short token',
      async (dir) => {
        await writeFile(join(dir, 'short'), 'hunter2\n');
        return `    ingest_token_file: ${join(dir, 'short')}\n`;
      },
      {},
      /collectors\.ingesttest\.ingest_token_file: the token is 7 characters; use at least 16/,
    ],
    [
      'an unset variable',
      async () => '    ingest_token_env: TEST_INGEST_TOKEN_UNSET\n',
      {},
      /collectors\.ingesttest\.ingest_token_env: the environment variable TEST_INGEST_TOKEN_UNSET is not set/,
    ],
    [
      'a file and a variable both',
      async (dir) => {
        await writeFile(join(dir, 'token'), TOKEN);
        return `    ingest_token_file: ${join(dir, 'token')}\n    ingest_token_env: TEST_INGEST_TOKEN\n`;
      },
      { TEST_INGEST_TOKEN: TOKEN },
      /collectors\.ingesttest\.ingest_token_file and collectors\.ingesttest\.ingest_token_env are both set; keep one of them/,
    ],
  ];
  for (const [what, config, env, message] of cases) {
    it(what, async () => {
      const dir = await tempDir('lookout-routes-bad-');
      const { code, out } = await refused(await config(dir), env);
      assert.equal(code, 2, out);
      assert.match(out, message);
      assert.doesNotMatch(out, /msg=listening/);
    });
  }
});
