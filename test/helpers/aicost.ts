/**
 * The AI-cost tests' shared parts: a lookout (the built CLI) with the aicost collector
 * on, its ingest token, a POST helper, and the store read back with better-sqlite3.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { REPO, freePort, startProcess, tempDir, type Running } from './procs.js';

export const AI_TOKEN = 'ai-ingest-token-7c2e9f41d0b3a8';

export interface AiLookout extends Running {
  /** The state directory (storage.path). */
  state: string;
  db: string;
  configFile: string;
}

/**
 * Writes a config with aicost enabled (`aicost` is YAML lines under `aicost:`, indented
 * by 4) and starts the built lookout on a free port.
 */
export async function startAiLookout(
  opts: {
    aicost?: string;
    dir?: string;
    port?: number;
    extraArgs?: string[];
    extraConfig?: string;
    readyPath?: string;
    /** Wait for the store to be open (default true): /healthz answers before services start. */
    waitOpen?: boolean;
    /** Run through this launcher (bin/lookout, with its Node flags) instead of node dist/cli.js. */
    launcher?: string;
  } = {},
): Promise<AiLookout> {
  const dir = opts.dir ?? (await tempDir('lookout-aicost-'));
  const state = join(dir, 'state');
  await mkdir(state, { recursive: true });
  await writeFile(join(dir, 'token'), `${AI_TOKEN}\n`);
  const configFile = join(dir, 'lookout.yml');
  await writeFile(
    configFile,
    `storage:\n  path: ${state}\n${opts.extraConfig ?? ''}collectors:\n  host: {enabled: false}\n  filesystem: {enabled: false}\n  processes: {enabled: false}\n  aicost:\n    enabled: true\n${opts.aicost ?? `    ingest_token_file: ${join(dir, 'token')}\n`}`,
  );
  const port = opts.port ?? (await freePort());
  const running = await startProcess(
    opts.launcher ?? process.execPath,
    [
      ...(opts.launcher ? [] : [join(REPO, 'dist/cli.js')]),
      'serve',
      '--config',
      configFile,
      '--web.listen-address',
      `127.0.0.1:${port}`,
      ...(opts.extraArgs ?? []),
    ],
    { readyPath: opts.readyPath ?? '/healthz', port, dir },
  );
  if (opts.waitOpen !== false) {
    const until = Date.now() + 30_000;
    while (!/msg="AI usage store open"/.test(running.output())) {
      if (Date.now() > until || running.child.exitCode !== null) {
        await running.stop();
        throw new Error(`the AI usage store did not open:\n${running.output()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { ...running, state, db: join(state, 'aicost', 'ai-usage.sqlite'), configFile };
}

export function postUsage(
  url: string,
  body: unknown,
  /** null: no Authorization header. */
  authorization: string | null = `Bearer ${AI_TOKEN}`,
): Promise<Response> {
  return fetch(`${url}/api/v1/ai-usage`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(authorization === null ? {} : { authorization }),
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export interface BatchAnswer {
  accepted: number;
  duplicate: number;
  rejected: number;
  items: { index: number; id?: string; result: string; reason?: string }[];
}

/** Reads the store (read-only, while lookout runs: WAL lets it). */
export function readStore<T>(db: string, read: (d: Database.Database) => T): T {
  const d = new Database(db, { readonly: true, fileMustExist: true });
  try {
    return read(d);
  } finally {
    d.close();
  }
}

/** An event with the four counts, reported cost optional. */
export function event(
  id: string,
  over: Record<string, unknown> = {},
): Record<string, unknown> & { id: string } {
  return {
    id,
    service: 'chat-api',
    model: 'gpt-test',
    provider: 'openai',
    input_tokens: 100,
    output_tokens: 20,
    ...over,
  };
}
