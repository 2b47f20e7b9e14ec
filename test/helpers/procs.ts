/**
 * Starts the real parts tests talk to — lookout itself, Prometheus, Alertmanager,
 * nginx, node_exporter — on free 127.0.0.1 ports, and stops them by pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

export async function tempDir(prefix = 'lookout-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export interface Running {
  child: ChildProcess;
  url: string;
  port: number;
  dir: string;
  output: () => string;
  stop: () => Promise<number | null>;
}

/** Resolves when GET url answers 2xx, or rejects with the child's output after timeoutMs. */
export async function waitForHttp(
  url: string,
  child: ChildProcess,
  output: () => string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`${url}: process exited ${child.exitCode}\n${output()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not up yet; the deadline bounds the wait
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url}: not ready after ${timeoutMs} ms\n${output()}`);
}

export async function startProcess(
  cmd: string,
  args: string[],
  opts: {
    readyPath: string;
    port: number;
    dir: string;
    env?: NodeJS.ProcessEnv;
    timeoutMs?: number;
  },
): Promise<Running> {
  const child = spawn(cmd, args, {
    cwd: opts.dir,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (b: Buffer) => {
    out += b.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const output = () => out;
  const url = `http://127.0.0.1:${opts.port}`;
  const stop = async (): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  try {
    await waitForHttp(url + opts.readyPath, child, output, opts.timeoutMs);
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, url, port: opts.port, dir: opts.dir, output, stop };
}

/** The built exporter (dist/), as `npm start` runs it. */
export async function startLookout(
  configYaml = '',
  extraArgs: string[] = [],
  env?: NodeJS.ProcessEnv,
): Promise<Running & { configFile: string }> {
  const dir = await tempDir('lookout-exporter-');
  const port = await freePort();
  const configFile = join(dir, 'lookout.yml');
  await writeFile(configFile, configYaml);
  const running = await startProcess(
    process.execPath,
    [
      join(REPO, 'dist/cli.js'),
      'serve',
      '--config',
      configFile,
      '--web.listen-address',
      `127.0.0.1:${port}`,
      ...extraArgs,
    ],
    { readyPath: '/healthz', port, dir, env },
  );
  return { ...running, configFile };
}

export async function startPrometheus(
  configYaml: string,
  extraArgs: string[] = [],
): Promise<Running> {
  const dir = await tempDir('lookout-prometheus-');
  const port = await freePort();
  await writeFile(join(dir, 'prometheus.yml'), configYaml);
  return startProcess(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      ...extraArgs,
    ],
    { readyPath: '/-/ready', port, dir, timeoutMs: 30_000 },
  );
}

export async function startAlertmanager(
  configYaml: string,
  extraArgs: string[] = [],
): Promise<Running> {
  const dir = await tempDir('lookout-alertmanager-');
  const port = await freePort();
  await writeFile(join(dir, 'alertmanager.yml'), configYaml);
  return startProcess(
    'prometheus-alertmanager',
    [
      `--config.file=${join(dir, 'alertmanager.yml')}`,
      `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
      ...extraArgs,
    ],
    { readyPath: '/-/ready', port, dir, timeoutMs: 30_000 },
  );
}

export async function startNodeExporter(extraArgs: string[] = []): Promise<Running> {
  const dir = await tempDir('lookout-node-exporter-');
  const port = await freePort();
  return startProcess(
    'prometheus-node-exporter',
    [`--web.listen-address=127.0.0.1:${port}`, ...extraArgs],
    {
      readyPath: '/metrics',
      port,
      dir,
    },
  );
}

/** GET /api/v1/query on a Prometheus; returns the result vector. */
export async function promQuery(
  promUrl: string,
  query: string,
): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.json()) as {
    status: string;
    error?: string;
    data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
  };
  if (body.status !== 'success') throw new Error(`query ${query}: ${body.error}`);
  return body.data.result;
}

/** Polls until check returns a truthy value, or throws with the last seen value. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`,
  );
}

/** A process below another in the process tree: its pid and kernel command name. */
export interface Descendant {
  pid: number;
  comm: string;
}

/**
 * Every living process below `root` (children, theirs, and so on), read from /proc at
 * once and synchronously, so it can run in an 'exit' handler. Zombies are left out: they
 * have exited and wait only for their parent to reap them.
 */
export function descendants(root = process.pid): Descendant[] {
  const parentOf = new Map<number, { ppid: number; comm: string }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // it exited between readdir and read
    }
    // The command name is in parentheses and may hold spaces and parentheses itself.
    const close = stat.lastIndexOf(')');
    const [state, ppid] = stat.slice(close + 2).split(' ');
    if (state === 'Z') continue;
    parentOf.set(Number(entry), {
      ppid: Number(ppid),
      comm: stat.slice(stat.indexOf('(') + 1, close),
    });
  }
  const out: Descendant[] = [];
  const below = new Set([root]);
  // Parents are listed before their children only by chance of pid order: repeat until
  // a pass finds nobody new.
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, p] of parentOf) {
      if (below.has(pid) || !below.has(p.ppid)) continue;
      below.add(pid);
      out.push({ pid, comm: p.comm });
      grew = true;
    }
  }
  return out;
}

/** Whether `pid` is a living process (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
