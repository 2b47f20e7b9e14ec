/**
 * The SMTP and Slack sinks (sinks.ts) inside a test's network namespace, where the
 * containers of a namespaced dockerd can reach them; what arrives is reported back to the
 * test over the child's stdout (netns-sinks-child.ts).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { REPO } from './procs.js';
import type { Email, SlackMessage } from './sinks.js';

export interface Received<T> {
  readonly received: T[];
  /** The first message (already arrived or arriving) that matches, or rejects after
   *  timeoutMs listing what did arrive. */
  waitFor(predicate: (m: T) => boolean, timeoutMs: number, what: string): Promise<T>;
}

export interface NetnsSinks {
  /** Ports on every address in the namespace (relays to the sinks). */
  smtpPort: number;
  slackPort: number;
  /** The webhook path to append to http://<address>:<slackPort>. */
  slackPath: string;
  /** The nsenter'd node process (nsenter execs it). */
  pid: number;
  email: Received<Email>;
  slack: Received<SlackMessage>;
  stop: () => Promise<void>;
}

function received<T>(describe: (m: T) => string): Received<T> {
  const list: T[] = [];
  return {
    received: list,
    async waitFor(predicate, timeoutMs, what) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = list.find(predicate);
        if (hit !== undefined) return hit;
        if (Date.now() >= deadline) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const seen = list.map((m) => '  ' + describe(m)).join('\n') || '  (nothing)';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received:\n${seen}`);
    },
  };
}

export async function startNetnsSinks(netns: string, timeoutMs = 30_000): Promise<NetnsSinks> {
  const child = spawn(
    'nsenter',
    [
      `--net=/run/netns/${netns}`,
      process.execPath,
      '--import',
      'tsx',
      join(REPO, 'test/helpers/netns-sinks-child.ts'),
    ],
    { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-20_000)));
  const email = received<Email>((m) => `email subject=${JSON.stringify(m.subject)}`);
  const slack = received<SlackMessage>(
    (m) => `slack title=${JSON.stringify(m.body.attachments?.[0]?.title)}`,
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
  };

  const ready = new Promise<{ smtpPort: number; slackPort: number; slackPath: string }>(
    (resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`sinks in netns ${netns} not ready after ${timeoutMs} ms:\n${stderr}`));
      }, timeoutMs);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`sinks in netns ${netns} exited ${code}:\n${stderr}`));
      });
      createInterface({ input: child.stdout }).on('line', (line) => {
        const msg = JSON.parse(line) as {
          ready?: { smtpPort: number; slackPort: number; slackPath: string };
          email?: Email;
          slack?: SlackMessage;
        };
        if (msg.ready) {
          clearTimeout(timer);
          resolve(msg.ready);
        }
        if (msg.email) email.received.push(msg.email);
        if (msg.slack) slack.received.push(msg.slack);
      });
    },
  );
  try {
    return { ...(await ready), pid: child.pid ?? 0, email, slack, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
