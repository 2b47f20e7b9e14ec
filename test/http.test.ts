/**
 * The shared HTTP client's transports against real servers: a node:http server on a unix
 * socket in a temp dir (as the Docker Engine API listens), a missing socket, a socket
 * that accepts and never answers, and a TCP server beside them.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { promisify } from 'node:util';
import { once } from 'node:events';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConnectTimeoutError, HttpClient } from '../src/lib/http.js';
import { REPO, tempDir } from './helpers/procs.js';
import { issue, makeTlsFiles } from './helpers/tls-files.js';

const run = promisify(execFile);

function listening(server: Server | ReturnType<typeof createNetServer>, where: string | number) {
  return new Promise<void>((resolve) =>
    typeof where === 'string'
      ? server.listen(where, resolve)
      : server.listen(where, '127.0.0.1', resolve),
  );
}

describe('the shared HTTP client', () => {
  let dir: string;
  let answering: Server;
  let tcp: Server;
  let tcpPort: number;
  let silent: ReturnType<typeof createNetServer>;
  const held: Socket[] = [];
  const seen: { host?: string; path?: string; body: string }[] = [];

  before(async () => {
    dir = await tempDir('lookout-http-');
    const handler = (
      req: import('node:http').IncomingMessage,
      res: import('node:http').ServerResponse,
    ) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ host: req.headers.host, path: req.url, body });
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ path: req.url, method: req.method, via: 'socket' }));
      });
    };
    answering = createHttpServer(handler);
    await listening(answering, join(dir, 'engine.sock'));
    tcp = createHttpServer(handler);
    await listening(tcp, 0);
    tcpPort = (tcp.address() as AddressInfo).port;
    silent = createNetServer((s) => held.push(s));
    await listening(silent, join(dir, 'silent.sock'));
  });

  after(() => {
    for (const s of held) s.destroy();
    answering.close();
    tcp.close();
    silent.close();
  });

  it('reaches an HTTP server on a unix socket by socket path and path, kept alive', async () => {
    const http = new HttpClient();
    const socketPath = join(dir, 'engine.sock');
    const connections = new Set<unknown>();
    const count = (s: Socket) => connections.add(s);
    answering.on('connection', count);
    try {
      for (let i = 0; i < 3; i++) {
        const res = await http.request(
          { socketPath, path: `/containers/json?all=${i}` },
          { signal: AbortSignal.timeout(5000) },
        );
        assert.equal(res.status, 200);
        assert.deepEqual(JSON.parse(res.body.toString()), {
          path: `/containers/json?all=${i}`,
          method: 'GET',
          via: 'socket',
        });
      }
      const posted = await http.request(
        { socketPath, path: '/containers/t1/restart' },
        { method: 'POST', body: 'x=1', signal: AbortSignal.timeout(5000) },
      );
      assert.equal(posted.status, 200);
      assert.equal(seen.at(-1)?.body, 'x=1');
      assert.equal(seen.at(-1)?.host, 'localhost');
      assert.equal(connections.size, 1, 'one kept-alive connection for four requests');
      assert.deepEqual(http.kindsInUse(), ['unix'], 'no TCP dispatcher made for a socket');
    } finally {
      answering.off('connection', count);
      await http.close();
    }
  });

  it('keeps one dispatcher per kind: a URL and a socket path side by side', async () => {
    const http = new HttpClient();
    try {
      assert.deepEqual(http.kindsInUse(), [], 'nothing made before the first request');
      const viaTcp = await http.request(`http://127.0.0.1:${tcpPort}/a`, {
        signal: AbortSignal.timeout(5000),
      });
      assert.deepEqual(http.kindsInUse(), ['tcp']);
      const viaUnix = await http.request(
        { socketPath: join(dir, 'engine.sock'), path: '/b' },
        { signal: AbortSignal.timeout(5000) },
      );
      assert.equal(viaTcp.status, 200);
      assert.equal(viaUnix.status, 200);
      assert.deepEqual(http.kindsInUse().sort(), ['tcp', 'unix']);
    } finally {
      await http.close();
    }
  });

  it('a missing socket fails at once, naming the path', async () => {
    const http = new HttpClient();
    const missing = join(dir, 'nothing.sock');
    const began = performance.now();
    await assert.rejects(
      http.request(
        { socketPath: missing, path: '/version' },
        { signal: AbortSignal.timeout(5000) },
      ),
      (err: NodeJS.ErrnoException) => {
        assert.equal(err.code, 'ENOENT');
        assert.match(err.message, new RegExp(`connect ENOENT ${missing}`));
        return true;
      },
    );
    assert.ok(performance.now() - began < 1000, 'not held until the deadline');
    await http.close();
  });

  it('a socket that accepts and never answers ends with the deadline, as a TimeoutError', async () => {
    const http = new HttpClient();
    const began = performance.now();
    await assert.rejects(
      http.request(
        { socketPath: join(dir, 'silent.sock'), path: '/version' },
        { signal: AbortSignal.timeout(300) },
      ),
      (err: Error) => {
        assert.equal(err.name, 'TimeoutError');
        return true;
      },
    );
    const took = performance.now() - began;
    assert.ok(took >= 290 && took < 2000, `ended after ${took.toFixed(0)} ms, deadline 300 ms`);
    await http.close();
  });

  it('a TCP connect that never completes ends with the connect timeout, naming the address', async () => {
    // A listener whose accept queue is full: the kernel drops further SYNs, so a connect
    // hangs as to a blackholed host. The child blocks its only thread (no CPU spent) so
    // it never accepts.
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const s = require('node:net').createServer();
         s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
           console.log(s.address().port);
           Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000);
         });`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const fillers: Socket[] = [];
    try {
      const [line] = (await once(child.stdout, 'data')) as [Buffer];
      const port = Number(line.toString().trim());
      // Fill the accept queue: until a connect does not complete within 200 ms.
      for (let i = 0; i < 16; i++) {
        const s = connect(port, '127.0.0.1');
        s.on('error', () => undefined);
        fillers.push(s);
        const connected = await Promise.race([
          once(s, 'connect').then(() => true),
          sleep(200).then(() => false),
        ]);
        if (!connected) break;
      }
      assert.ok(fillers.at(-1)?.connecting, 'the accept queue filled up');
      const http = new HttpClient({ connectTimeoutMs: 300 });
      const began = performance.now();
      await assert.rejects(
        http.request(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) }),
        (err: ConnectTimeoutError) => {
          assert.ok(err instanceof ConnectTimeoutError);
          assert.equal(err.code, 'LOOKOUT_CONNECT_TIMEOUT');
          assert.equal(err.message, `connect to 127.0.0.1:${port} timed out after 0.3s`);
          return true;
        },
      );
      const took = performance.now() - began;
      assert.ok(took >= 290 && took < 2000, `ended after ${took.toFixed(0)} ms`);
      await http.close();
    } finally {
      for (const s of fillers) s.destroy();
      child.kill();
    }
  });

  it('refuses a URL that is not http: or https:, naming it', async () => {
    const http = new HttpClient();
    await assert.rejects(
      http.request('ftp://127.0.0.1/x', { signal: AbortSignal.timeout(1000) }),
      /ftp: URLs are not fetched \(only http: and https:\): ftp:\/\/127\.0\.0\.1\/x/,
    );
  });

  it('a connection that drops mid-body is an error, not a short body', async () => {
    const cut = createHttpServer((_, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('only part');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    await listening(cut, 0);
    const http = new HttpClient();
    try {
      await assert.rejects(
        http.request(`http://127.0.0.1:${(cut.address() as AddressInfo).port}/`, {
          signal: AbortSignal.timeout(5000),
        }),
      );
    } finally {
      await http.close();
      cut.close();
    }
  });

  it('https: verifies the server certificate and its name against the trusted CAs (NODE_EXTRA_CA_CERTS), as undici did', async () => {
    const files = await makeTlsFiles();
    const serve = async (pair: { cert: string; key: string }) => {
      const server = createHttpsServer(
        { cert: await readFile(pair.cert), key: await readFile(pair.key) },
        (_, res) => res.end('over tls'),
      );
      await listening(server, 0);
      return { server, port: (server.address() as AddressInfo).port };
    };
    const good = await serve(files.server);
    const expired = await serve(files.expired);
    // Signed by the same CA for another name only.
    const issuer = { cert: files.ca, key: join(files.dir, 'server-ca.key') };
    const other = await serve(
      await issue(files.dir, issuer, 'other', { san: 'DNS:other.example' }),
    );
    const http = new HttpClient();
    try {
      // This process does not trust the test CA: refused, and the TLS kind was made.
      await assert.rejects(
        http.request(`https://localhost:${good.port}/`, { signal: AbortSignal.timeout(5000) }),
        (err: NodeJS.ErrnoException) => {
          assert.equal(err.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
          return true;
        },
      );
      assert.deepEqual(http.kindsInUse(), ['tls']);
      // A process that trusts it, as a host's CA bundle would: each URL's answer or error code.
      const script = `
        import { HttpClient } from ${JSON.stringify(join(REPO, 'src/lib/http.ts'))};
        const http = new HttpClient();
        for (const url of process.argv.slice(1)) {
          const out = await http.request(url, { signal: AbortSignal.timeout(5000) }).then(
            (r) => r.status + ' ' + r.body.toString(),
            (e) => e.code,
          );
          console.log(out);
        }
        await http.close();
      `;
      const { stdout } = await run(
        process.execPath,
        [
          '--import',
          import.meta.resolve('tsx'),
          '--input-type=module',
          '-e',
          script,
          `https://localhost:${good.port}/`,
          `https://127.0.0.1:${good.port}/`,
          `https://localhost:${other.port}/`,
          `https://localhost:${expired.port}/`,
        ],
        { env: { ...process.env, NODE_EXTRA_CA_CERTS: files.ca } },
      );
      assert.deepEqual(stdout.trim().split('\n'), [
        '200 over tls',
        '200 over tls',
        'ERR_TLS_CERT_ALTNAME_INVALID',
        'CERT_HAS_EXPIRED',
      ]);
    } finally {
      await http.close();
      good.server.close();
      expired.server.close();
      other.server.close();
    }
  });
});

describe('the shared HTTP client: a streamed response', () => {
  it('resolves at the headers, reads the body as it comes, on a connection outside the pool; the signal ends it', async () => {
    const dir = await tempDir('lookout-http-stream-');
    const path = join(dir, 'events.sock');
    const server = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"n":1}\n');
      // The second line only when the client has the first: a body that comes over time.
      setTimeout(() => res.write('{"n":2}\n'), 50);
    });
    await listening(server, path);
    const http = new HttpClient();
    const abort = new AbortController();
    try {
      const res = await http.stream(
        { socketPath: path, path: '/events' },
        { signal: abort.signal },
      );
      assert.equal(res.status, 200);
      assert.deepEqual(http.kindsInUse(), [], 'no pooled agent made for a stream');
      let text = '';
      await assert.rejects(
        (async () => {
          for await (const chunk of res.body as AsyncIterable<Buffer>) {
            text += chunk.toString();
            if (text.includes('"n":2')) abort.abort(new Error('enough'));
          }
        })(),
      );
      assert.equal(text, '{"n":1}\n{"n":2}\n');
      assert.ok(res.body.destroyed, 'the abort closed the body');
    } finally {
      server.closeAllConnections();
      server.close();
      await http.close();
    }
  });

  it('rejects as request() does before the headers: a missing socket, the signal', async () => {
    const dir = await tempDir('lookout-http-stream-');
    const http = new HttpClient();
    await assert.rejects(
      http.stream(
        { socketPath: join(dir, 'none.sock'), path: '/events' },
        { signal: AbortSignal.timeout(5000) },
      ),
      (err: NodeJS.ErrnoException) => err.code === 'ENOENT',
    );
    const silent = createNetServer(() => undefined);
    await listening(silent, join(dir, 'silent.sock'));
    await assert.rejects(
      http.stream(
        { socketPath: join(dir, 'silent.sock'), path: '/events' },
        { signal: AbortSignal.timeout(200) },
      ),
      (err: Error) => err.name === 'TimeoutError',
    );
    silent.close();
    await http.close();
  });
});
