/**
 * lookout's door with real clients: curl, openssl-made certificates, Node's TLS client
 * and Prometheus itself, against the built lookout started as `npm start` starts it, with
 * a web-config file in the exporter toolkit's format.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { copyFile, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { dump, load } from 'js-yaml';
import { sampleValue } from './helpers/exposition.js';
import {
  REPO,
  eventually,
  freePort,
  promQuery,
  startPrometheus,
  type Running,
} from './helpers/procs.js';
import {
  bcryptHash,
  issue,
  makeTlsFiles,
  startLookoutWeb,
  type TlsFiles,
} from './helpers/tls-files.js';

const run = promisify(execFile);
const USER = 'prometheus';
const PASSWORD = 'correct horse battery staple';
/** Rounds of the auth timing test; each has a user of its own with the right password. */
const TRIES = 5;
const FRESH_USERS = Array.from({ length: TRIES }, (_, i) => `fresh${i}`);

/** curl's exit code, HTTP status, headers and body; never throws. */
async function curl(url: string, args: string[]) {
  const res = await run('curl', ['-s', '-S', '-D', '-', '-w', '\n%{http_code}', ...args, url], {
    maxBuffer: 8 << 20,
  }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
  const status = Number(res.stdout.trim().split('\n').at(-1));
  const cut = res.stdout.indexOf('\r\n\r\n');
  const body = cut < 0 ? '' : res.stdout.slice(cut + 4).replace(/\n\d+$/, '');
  return { exit: res.code, status, text: res.stdout, body, stderr: res.stderr };
}

/** The subject CN and serial of the certificate lookout serves on a new connection. */
function servedCertificate(port: number, ca: string): Promise<{ cn: string; serial: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const c = s.getPeerCertificate();
      s.destroy();
      resolve({ cn: String(c.subject.CN), serial: c.serialNumber });
    });
    s.once('error', reject);
  });
}

let files: TlsFiles;
let ca: string;
let hash: string;
before(async () => {
  files = await makeTlsFiles();
  ca = await readFile(files.ca, 'utf8');
  hash = await bcryptHash(PASSWORD);
});

async function webConfig(name: string, yaml: string): Promise<string> {
  const path = join(files.dir, name);
  await writeFile(path, yaml);
  return path;
}

describe('TLS and basic auth (curl)', () => {
  let lookout: Running;
  before(async () => {
    const path = await webConfig(
      'web-auth.yml',
      `tls_server_config:
  cert_file: server.crt
  key_file: server.key
http_server_config:
  headers:
    X-Frame-Options: deny
basic_auth_users:
  ${USER}: ${hash}
  second: ${hash}
${FRESH_USERS.map((u) => `  ${u}: ${hash}`).join('\n')}
`,
    );
    lookout = await startLookoutWeb(path, { ca: files.ca });
  });
  after(async () => {
    await lookout?.stop();
  });
  const tls = () => ['--cacert', files.ca];

  it('the right password gets /metrics over TLS, with the configured header', async () => {
    const r = await curl(`${lookout.url}/metrics`, [...tls(), '-u', `${USER}:${PASSWORD}`]);
    assert.equal(r.status, 200, r.stderr);
    assert.match(r.text, /^x-frame-options: deny\r?$/im);
    assert.match(r.text, /^lookout_build_info\{/m);
  });

  it('scrapes after the first, with credentials already verified, keep the configured header; a wrong password after them still gets 401', async () => {
    // Verified credentials are answered in front of koa (app.ts metricsFastPath): the
    // same door, without the middleware.
    for (let i = 0; i < 3; i++) {
      const r = await curl(`${lookout.url}/metrics`, [...tls(), '-u', `${USER}:${PASSWORD}`]);
      assert.equal(r.status, 200, r.stderr);
      assert.match(r.text, /^x-frame-options: deny\r?$/im);
      assert.match(r.body, /^lookout_build_info\{/m);
    }
    const wrong = await curl(`${lookout.url}/metrics`, [...tls(), '-u', `${USER}:${PASSWORD}x`]);
    assert.equal(wrong.status, 401);
    assert.doesNotMatch(wrong.text, /lookout_build_info/);
  });

  it('a wrong password, an unknown user and no password get 401 with a Basic challenge, on every route but /healthz', async () => {
    for (const args of [['-u', `${USER}:wrong`], ['-u', `mallory:${PASSWORD}`], []]) {
      for (const path of ['/metrics', '/', '/runbooks', '/nothing-here']) {
        const r = await curl(`${lookout.url}${path}`, [...tls(), ...args]);
        assert.equal(r.status, 401, `${path} ${args.join(' ')}`);
        assert.match(r.text, /^www-authenticate: Basic realm="lookout"/im);
        assert.doesNotMatch(r.text, /lookout_build_info/);
      }
    }
    const health = await curl(`${lookout.url}/healthz`, tls());
    assert.equal(health.status, 200);
  });

  it('counts the failures in lookout_http_auth_failures_total by reason', async () => {
    const r = await curl(`${lookout.url}/metrics`, [...tls(), '-u', `${USER}:${PASSWORD}`]);
    const wrong = sampleValue(r.body, 'lookout_http_auth_failures_total', {
      reason: 'wrong_credentials',
    });
    const missing = sampleValue(r.body, 'lookout_http_auth_failures_total', {
      reason: 'missing_credentials',
    });
    assert.ok((wrong ?? 0) >= 8, `wrong_credentials ${wrong}`);
    assert.ok((missing ?? 0) >= 4, `missing_credentials ${missing}`);
    assert.equal(
      sampleValue(r.body, 'lookout_http_auth_failures_total', { reason: 'client_certificate' }),
      0,
    );
    assert.match(lookout.output(), /msg="authentication failed" reason=wrong_credentials/);
  });

  it('a wrong user, a wrong password and a right one not yet cached cost the same order of time', async () => {
    // Each pays one bcrypt compare of the configured cost (the unknown user against a dummy
    // hash of that cost): a timing difference would tell an attacker which users exist.
    // Medians over TRIES, each within 3x of the others; the figures themselves belong to
    // a benchmark and stay out of the output.
    const time = async (user: string, pw: string) => {
      const { stdout } = await run('curl', [
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{time_starttransfer} %{time_appconnect}',
        ...tls(),
        '-u',
        `${user}:${pw}`,
        `${lookout.url}/metrics`,
      ]);
      const [code, first, tlsDone] = stdout.split(' ').map(Number);
      return { code: code!, ms: (first! - tlsDone!) * 1000 };
    };
    const rounds = {
      unknown_user: [] as number[],
      wrong_password: [] as number[],
      right_uncached: [] as number[],
    };
    for (let i = 0; i < TRIES; i++) {
      const unknown = await time(`mallory${i}`, PASSWORD);
      const wrong = await time(USER, `wrong${i}`);
      // A user of its own each round: the cache holds a right password once seen.
      const right = await time(FRESH_USERS[i]!, PASSWORD);
      assert.deepEqual([unknown.code, wrong.code, right.code], [401, 401, 200], `round ${i}`);
      rounds.unknown_user.push(unknown.ms);
      rounds.wrong_password.push(wrong.ms);
      rounds.right_uncached.push(right.ms);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const medians = Object.entries(rounds).map(([k, v]) => [k, median(v)] as const);
    const shown = medians.map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(', ');
    for (const [a, ma] of medians) {
      for (const [b, mb] of medians) {
        assert.ok(ma <= 3 * mb, `${a} costs more than 3x ${b}: ${shown}`);
      }
    }
  });

  it('plain HTTP on the TLS port gets no metrics', async () => {
    const r = await curl(lookout.url.replace('https', 'http') + '/metrics', []);
    assert.doesNotMatch(r.text, /lookout_build_info/);
  });
});

/** TLS that requires a client certificate from the test CA, and basic auth besides. */
const mtlsWithAuth = () => `tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: client-ca.crt
basic_auth_users:
  ${USER}: ${hash}
`;

describe('rate_limit (curl)', () => {
  let lookout: Running;
  before(async () => {
    const path = await webConfig(
      'web-rate.yml',
      `basic_auth_users:
  ${USER}: ${hash}
rate_limit:
  interval: 1m
  burst: 2
`,
    );
    lookout = await startLookoutWeb(path);
  });
  after(async () => {
    await lookout?.stop();
  });

  it('past the burst, /metrics gets 429 with Retry-After even with verified credentials; /healthz stays open', async () => {
    const auth = ['-u', `${USER}:${PASSWORD}`];
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await curl(`${lookout.url}/metrics`, auth)).status);
    assert.deepEqual(statuses, [200, 200, 429, 429]);
    const r = await curl(`${lookout.url}/metrics`, auth);
    assert.equal(r.status, 429);
    assert.match(r.text, /^retry-after: 1\r?$/im);
    assert.equal((await curl(`${lookout.url}/healthz`, [])).status, 200);
  });
});

describe('mTLS: RequireAndVerifyClientCert with basic auth', () => {
  let lookout: Running;
  before(async () => {
    const path = await webConfig('web-mtls.yml', mtlsWithAuth());
    lookout = await startLookoutWeb(path, { ca: files.ca });
  });
  after(async () => {
    await lookout?.stop();
  });
  const withCert = (p: { cert: string; key: string }) => [
    '--cacert',
    files.ca,
    '--cert',
    p.cert,
    '--key',
    p.key,
    '-u',
    `${USER}:${PASSWORD}`,
  ];

  it('a client certificate from the client CA and the password get /metrics', async () => {
    const r = await curl(`${lookout.url}/metrics`, withCert(files.client));
    assert.equal(r.status, 200, r.stderr);
  });

  it('no client certificate, or one from another CA, gets no HTTP answer at all', async () => {
    const none = await curl(`${lookout.url}/metrics`, [
      '--cacert',
      files.ca,
      '-u',
      `${USER}:${PASSWORD}`,
    ]);
    assert.notEqual(none.exit, 0);
    assert.ok(!(none.status >= 100), `status ${none.status}`);
    const stranger = await curl(`${lookout.url}/metrics`, withCert(files.stranger));
    assert.notEqual(stranger.exit, 0);
    assert.doesNotMatch(stranger.text, /lookout_build_info/);
  });

  it('counts them as client_certificate failures', async () => {
    const r = await curl(`${lookout.url}/metrics`, withCert(files.client));
    const n = sampleValue(r.body, 'lookout_http_auth_failures_total', {
      reason: 'client_certificate',
    });
    assert.ok((n ?? 0) >= 2, `client_certificate ${n}`);
  });

  it('the right certificate with a wrong password still gets 401', async () => {
    const args = withCert(files.client);
    args[args.length - 1] = `${USER}:wrong`;
    assert.equal((await curl(`${lookout.url}/metrics`, args)).status, 401);
  });
});

describe('every client_auth_type, and client_allowed_sans (curl)', () => {
  // What each client gets: no certificate, one from the client CA, one from a stranger's CA.
  const table: [string, string, { none: boolean; trusted: boolean; stranger: boolean }][] = [
    ['NoClientCert', '', { none: true, trusted: true, stranger: true }],
    ['RequestClientCert', '', { none: true, trusted: true, stranger: true }],
    ['RequireAnyClientCert', '', { none: false, trusted: true, stranger: true }],
    [
      'VerifyClientCertIfGiven',
      '  client_ca_file: client-ca.crt\n',
      { none: true, trusted: true, stranger: false },
    ],
    [
      'RequireAndVerifyClientCert',
      '  client_ca_file: client-ca.crt\n',
      { none: false, trusted: true, stranger: false },
    ],
    [
      'RequireAndVerifyClientCert',
      '  client_ca_file: client-ca.crt\n  client_allowed_sans: [someone-else]\n',
      { none: false, trusted: false, stranger: false },
    ],
    [
      'RequireAndVerifyClientCert',
      '  client_ca_file: client-ca.crt\n  client_allowed_sans: [someone-else, prometheus]\n',
      { none: false, trusted: true, stranger: false },
    ],
  ];
  for (const [type, extra, want] of table) {
    it(`${type}${extra.includes('sans') ? ` with ${extra.trim().split('\n').at(-1)}` : ''}`, async () => {
      const path = await webConfig(
        'web-type.yml',
        `tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: ${type}\n${extra}`,
      );
      const lookout = await startLookoutWeb(path, { ca: files.ca });
      try {
        const got = async (p?: { cert: string; key: string }) =>
          (
            await curl(`${lookout.url}/metrics`, [
              '--cacert',
              files.ca,
              ...(p ? ['--cert', p.cert, '--key', p.key] : []),
            ])
          ).status === 200;
        assert.deepEqual(
          {
            none: await got(),
            trusted: await got(files.client),
            stranger: await got(files.stranger),
          },
          want,
        );
      } finally {
        await lookout.stop();
      }
    });
  }
});

describe('certificates on disk', () => {
  it('an expired server certificate: lookout check warns and still passes (node_exporter serves it too)', async () => {
    const path = await webConfig(
      'web-expired.yml',
      'tls_server_config:\n  cert_file: server-expired.crt\n  key_file: server-expired.key\n',
    );
    const check = await run(process.execPath, [
      join(REPO, 'dist/cli.js'),
      'check',
      '--web.config.file',
      path,
    ]);
    assert.match(check.stderr, /certificate expired 2020-02-01/);
    assert.match(check.stdout, /web-expired\.yml: OK/);
  });

  it('an expired server certificate: lookout serves it and logs so; curl refuses it', async () => {
    const path = join(files.dir, 'web-expired.yml');
    const port = await freePort();
    const child = spawn(join(REPO, 'bin/lookout'), [
      'serve',
      '--web.config.file',
      path,
      '--web.listen-address',
      `127.0.0.1:${port}`,
    ]);
    let out = '';
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    try {
      await eventually(async () => /msg=listening/.test(out), 20_000, 'lookout listening');
      assert.match(out, /the TLS certificate lookout serves has expired/);
      const r = await curl(`https://127.0.0.1:${port}/healthz`, ['--cacert', files.ca]);
      assert.equal(r.exit, 60, r.stderr);
      assert.match(r.stderr, /expired/);
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('a certificate replaced on disk is served to the connections after the next one, without a restart', async () => {
    const dir = files.dir;
    await copyFile(files.server.cert, join(dir, 'live.crt'));
    await copyFile(files.server.key, join(dir, 'live.key'));
    const path = await webConfig(
      'web-live.yml',
      'tls_server_config:\n  cert_file: live.crt\n  key_file: live.key\n',
    );
    const lookout = await startLookoutWeb(path, { ca: files.ca });
    try {
      const before = await servedCertificate(lookout.port, ca);
      assert.equal(before.cn, 'server');
      const serverCa = { cert: files.ca, key: files.ca.replace(/\.crt$/, '.key') };
      const renewed = await issue(dir, serverCa, 'renewed');
      // Half a renewal first: the new certificate beside the old key. A new connection
      // makes lookout look; it refuses the pair and keeps serving the old one.
      await copyFile(renewed.cert, join(dir, 'live.crt.tmp'));
      await rename(join(dir, 'live.crt.tmp'), join(dir, 'live.crt'));
      await servedCertificate(lookout.port, ca);
      await eventually(
        async () => /changed but cannot be used; keeping the running ones/.test(lookout.output()),
        5_000,
        'lookout to refuse the half-renewed pair',
      );
      assert.equal((await servedCertificate(lookout.port, ca)).serial, before.serial);
      // Then the key: the connection that sees the change starts the reload, the ones
      // after it (within a stat round) get the renewed certificate.
      await copyFile(renewed.key, join(dir, 'live.key.tmp'));
      await rename(join(dir, 'live.key.tmp'), join(dir, 'live.key'));
      await eventually(
        async () => (await servedCertificate(lookout.port, ca)).cn === 'renewed',
        5_000,
        'the renewed certificate on a new connection',
      );
      assert.match(lookout.output(), /msg="web config reloaded"/);
    } finally {
      await lookout.stop();
    }
  });
});

describe('the web-config file edited while lookout runs', () => {
  it('a user added works from the connections after the edit; a broken edit keeps the running file', async () => {
    const path = join(files.dir, 'web-edit.yml');
    const put = async (yaml: string) => {
      await writeFile(`${path}.tmp`, yaml);
      await rename(`${path}.tmp`, path);
    };
    await put(`basic_auth_users:\n  ${USER}: ${hash}\n`);
    const lookout = await startLookoutWeb(path);
    try {
      const status = async (user: string) =>
        (await curl(`${lookout.url}/metrics`, ['-u', `${user}:${PASSWORD}`])).status;
      assert.equal(await status(USER), 200);
      assert.equal(await status('added'), 401);
      await put(`basic_auth_users:\n  ${USER}: ${hash}\n  added: ${hash}\n`);
      await eventually(async () => (await status('added')) === 200, 5_000, 'the added user');
      await put('basic_auth_users:\n  added: [broken\n');
      await status('added');
      await eventually(
        async () => /changed but cannot be used; keeping the running ones/.test(lookout.output()),
        5_000,
        'lookout to refuse the broken edit',
      );
      assert.equal(await status('added'), 200, 'the running file stays');
      assert.equal(await status('mallory'), 401);
      assert.match(lookout.output(), /msg="web config reloaded"/);
      assert.match(lookout.output(), /changed but cannot be used; keeping the running ones/);
    } finally {
      await lookout.stop();
    }
  });
});

describe('lookout check --web.config.file, and serve refusing a bad one', () => {
  const cli = (args: string[]) =>
    run(process.execPath, [join(REPO, 'dist/cli.js'), ...args]).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );

  it('a good file with its certificates: exit 0, each file OK', async () => {
    const path = await webConfig(
      'web-check.yml',
      `tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  ${USER}: ${hash}\n`,
    );
    const r = await cli(['check', '--web.config.file', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /web-check\.yml: OK/);
  });

  const bad: [string, string, RegExp][] = [
    [
      'an unknown key',
      'tls_server_config:\n  certfile: x\n',
      /tls_server_config\.certfile: unknown key/,
    ],
    [
      'a key that is not the certificate’s',
      'tls_server_config:\n  cert_file: server.crt\n  key_file: stranger.key\n',
      /tls_server_config\.key_file: cannot be used/,
    ],
    [
      'a missing certificate file',
      'tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n',
      /tls_server_config\.cert_file: .*nope\.crt: no such file/,
    ],
    ['http2: true', 'http_server_config:\n  http2: true\n', /http2: true cannot be honoured/],
  ];
  for (const [what, yaml, want] of bad) {
    it(`${what}: check exits 1 naming the field`, async () => {
      const path = await webConfig('web-bad.yml', yaml);
      const r = await cli(['check', '--web.config.file', path]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, want);
    });
  }

  it('serve with a bad file exits 1 before listening, naming the field', async () => {
    const path = await webConfig('web-bad2.yml', 'basic_auth_users:\n  alice: hunter2\n');
    const r = await cli([
      'serve',
      '--web.config.file',
      path,
      '--web.listen-address',
      '127.0.0.1:0',
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /basic_auth_users\."alice": not a bcrypt hash/);
    assert.doesNotMatch(r.stderr, /hunter2/);
  });
});

describe('Prometheus scrapes lookout through TLS, basic auth and mTLS, as prometheus.yml documents', () => {
  let lookout: Running;
  let prom: Running;
  before(async () => {
    const path = await webConfig('web-prom.yml', mtlsWithAuth());
    lookout = await startLookoutWeb(path, { ca: files.ca });
    await writeFile(join(files.dir, 'password'), PASSWORD);
    await writeFile(join(files.dir, 'wrong-password'), 'wrong');
    // The lookout job as prometheus.yml documents it, its commented TLS lines switched on
    // and pointed at this test's files.
    const shipped = await readFile(join(REPO, 'prometheus.yml'), 'utf8');
    const lines = shipped.split('\n');
    const from = lines.findIndex((l) => /^\s+# scheme: https$/.test(l));
    assert.ok(from > 0, 'prometheus.yml has the commented https lines');
    const block: string[] = [];
    for (let i = from; i < lines.length && /^\s+#/.test(lines[i]!); i++) {
      block.push(lines[i]!.replace(/^(\s+)# /, '$1'));
    }
    const tlsJob = load(block.join('\n')) as {
      scheme: string;
      tls_config: Record<string, string>;
      basic_auth: { username: string; password_file: string };
    };
    assert.equal(tlsJob.scheme, 'https');
    assert.deepEqual(Object.keys(tlsJob.tls_config).sort(), ['ca_file', 'cert_file', 'key_file']);
    assert.equal(tlsJob.basic_auth.username, USER);
    const job = (name: string, passwordFile: string) => ({
      job_name: name,
      ...tlsJob,
      tls_config: { ca_file: files.ca, cert_file: files.client.cert, key_file: files.client.key },
      basic_auth: { username: USER, password_file: passwordFile },
      static_configs: [{ targets: [`127.0.0.1:${lookout.port}`] }],
    });
    prom = await startPrometheus(
      dump({
        global: { scrape_interval: '1s', scrape_timeout: '1s' },
        scrape_configs: [
          job('lookout', join(files.dir, 'password')),
          job('lookout-wrong-password', join(files.dir, 'wrong-password')),
        ],
      }),
    );
  });
  after(async () => {
    await prom?.stop();
    await lookout?.stop();
  });

  it('up is 1 with the right client certificate and password, 0 with a wrong password', async () => {
    await eventually(
      async () => {
        const up = await promQuery(prom.url, 'up');
        const by = Object.fromEntries(up.map((s) => [s.metric.job, s.value[1]]));
        return by.lookout === '1' && by['lookout-wrong-password'] === '0';
      },
      20_000,
      'up{job="lookout"} == 1 and up{job="lookout-wrong-password"} == 0',
    );
    const build = await promQuery(prom.url, 'lookout_build_info{job="lookout"}');
    assert.equal(build.length, 1);
  });
});

describe('deploy/systemd/lookout.service: systemd-analyze security', () => {
  /** The unit's exposure level, offline, as installed (/opt/lookout → this checkout). */
  async function exposure(extra: string[]): Promise<number> {
    const { tempDir } = await import('./helpers/procs.js');
    const dir = await tempDir('lookout-unit-');
    const unit = (await readFile(join(REPO, 'deploy/systemd/lookout.service'), 'utf8'))
      .replaceAll('/opt/lookout/', REPO)
      .replace('[Service]\n', `[Service]\n${extra.join('\n')}${extra.length ? '\n' : ''}`);
    await writeFile(join(dir, 'lookout.service'), unit);
    const { stdout } = await run('systemd-analyze', [
      'security',
      '--offline=true',
      join(dir, 'lookout.service'),
    ]);
    const m = /Overall exposure level for lookout\.service: (\d+\.\d+)/.exec(stdout);
    assert.ok(m, stdout.slice(-300));
    return Number(m[1]);
  }

  it('scores 1.9 or better, and still does with the docker-group drop-in', async () => {
    const dropIn = (
      await readFile(join(REPO, 'deploy/systemd/lookout.service.d/docker.conf'), 'utf8')
    )
      .split('\n')
      .filter((l) => /^\w+=/.test(l));
    assert.deepEqual(dropIn, ['SupplementaryGroups=docker']);
    const alone = await exposure([]);
    const withDocker = await exposure(dropIn);
    console.log(`# systemd-analyze security: ${alone} alone, ${withDocker} with docker.conf`);
    assert.ok(alone <= 1.9, `${alone}`);
    assert.ok(withDocker <= 1.9, `${withDocker}`);
  });
});
