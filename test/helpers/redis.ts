/**
 * A real redis-server from Debian on a free 127.0.0.1 port, no persistence, optionally
 * with a password; `cli()` runs redis-cli against it to set up keys.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { freePort, tempDir } from './procs.js';

const run = promisify(execFile);

export interface Redis {
  child: ChildProcess;
  port: number;
  address: string;
  /** redis-cli with these arguments against this server; resolves with its stdout. */
  cli(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** Whether something answers PING with PONG (or NOAUTH: up, wanting a password). */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('error', () => done(false));
    s.once('data', (b) => done(/^(\+PONG|-NOAUTH)/.test(b.toString())));
    s.write('PING\r\n');
  });
}

export async function startRedis(opts: { password?: string } = {}): Promise<Redis> {
  const port = await freePort();
  const dir = await tempDir('lookout-redis-');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--daemonize', 'no'];
  args.push('--dir', dir);
  if (opts.password !== undefined) args.push('--requirepass', opts.password);
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + 15_000;
  while (!(await pings(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server did not start on ${port}:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const auth = opts.password === undefined ? [] : ['--no-auth-warning', '-a', opts.password];
  return {
    child,
    port,
    address: `127.0.0.1:${port}`,
    cli: async (...a) => (await run('redis-cli', ['-p', String(port), ...auth, ...a])).stdout,
    stop,
  };
}
