/**
 * Redis probe: PING (after AUTH and SELECT when configured) and LLEN of named keys, over
 * one short-lived connection, spoken in RESP directly. A client library (node-redis,
 * ioredis) brings reconnection, offline queues and connection pools — exactly what a
 * probe must not have: it would retry, queue or hold a connection instead of answering
 * "does Redis answer now?" under one deadline. Four commands need only the few reply
 * types parsed here.
 */
import { openSocket, type ProbeOutcome } from './probe-tcp.js';

export interface RedisProbe {
  address: string;
  username?: string;
  password?: string;
  db: number;
  listKeys: readonly string[];
}

export interface RedisOutcome extends ProbeOutcome {
  /** LLEN of each configured key that is a list (or absent: 0); only when Redis answered PONG. */
  listLengths?: ReadonlyMap<string, number>;
}

/** One RESP reply: +simple, -error, :integer, $bulk (null as null), *array. */
export type RespValue = string | number | null | RespError | RespValue[];

export class RespError {
  constructor(readonly message: string) {}
}

/** A Redis command as RESP: an array of bulk strings. */
export function encodeCommand(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
  return Buffer.from(parts.join(''));
}

/**
 * Parses one reply at `offset`: the value and where the next begins, or undefined when
 * `buf` does not hold a whole reply yet.
 */
export function parseReply(
  buf: Buffer,
  offset = 0,
): { value: RespValue; next: number } | undefined {
  const eol = buf.indexOf('\r\n', offset);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[offset]!);
  const line = buf.toString('utf8', offset + 1, eol);
  const after = eol + 2;
  switch (type) {
    case '+':
      return { value: line, next: after };
    case '-':
      return { value: new RespError(line), next: after };
    case ':':
      return { value: Number(line), next: after };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, next: after };
      if (buf.length < after + n + 2) return undefined;
      return { value: buf.toString('utf8', after, after + n), next: after + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next: after };
      const items: RespValue[] = [];
      let at = after;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, at);
        if (!r) return undefined;
        items.push(r.value);
        at = r.next;
      }
      return { value: items, next: at };
    }
    default:
      throw new Error(`not a Redis reply (starts with ${JSON.stringify(type)})`);
  }
}

export class RedisProbeError extends Error {
  readonly code = 'LOOKOUT_REDIS_PROBE';
}

/** Sends every command at once (pipelined) and resolves with their replies, in order. */
async function pipeline(
  address: string,
  commands: readonly (readonly string[])[],
  signal: AbortSignal,
): Promise<RespValue[]> {
  const socket = await openSocket(address, signal);
  try {
    return await new Promise<RespValue[]>((resolve, reject) => {
      let buf: Buffer = Buffer.alloc(0);
      const replies: RespValue[] = [];
      const fail = (err: unknown) => reject(err);
      signal.addEventListener('abort', () => fail(signal.reason), { once: true });
      socket.on('error', fail);
      socket.on('close', () =>
        fail(new RedisProbeError(`connection closed after ${replies.length} replies`)),
      );
      socket.on('data', (chunk: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        try {
          for (let r = parseReply(buf); r; r = parseReply(buf)) {
            replies.push(r.value);
            buf = buf.subarray(r.next);
            if (replies.length === commands.length) return resolve(replies);
          }
        } catch (err) {
          fail(err);
        }
      });
      socket.write(Buffer.concat(commands.map(encodeCommand)));
    });
  } finally {
    socket.destroy();
  }
}

export async function probeRedis(p: RedisProbe, signal: AbortSignal): Promise<RedisOutcome> {
  const commands: string[][] = [];
  if (p.password !== undefined)
    commands.push(p.username ? ['AUTH', p.username, p.password] : ['AUTH', p.password]);
  if (p.db !== 0) commands.push(['SELECT', String(p.db)]);
  const pingAt = commands.push(['PING']) - 1;
  for (const key of p.listKeys) commands.push(['LLEN', key]);
  const replies = await pipeline(p.address, commands, signal);
  // The first error is the cause (a failed AUTH makes every later command NOAUTH).
  const firstError = replies.slice(0, pingAt + 1).find((r) => r instanceof RespError);
  if (firstError instanceof RespError) return { ok: false, detail: firstError.message };
  if (replies[pingAt] !== 'PONG')
    return { ok: false, detail: `PING answered ${JSON.stringify(replies[pingAt])}` };
  const listLengths = new Map<string, number>();
  const problems: string[] = [];
  p.listKeys.forEach((key, i) => {
    const r = replies[pingAt + 1 + i];
    if (typeof r === 'number') listLengths.set(key, r);
    else problems.push(`${key}: ${r instanceof RespError ? r.message : JSON.stringify(r)}`);
  });
  // A key that is not a list (WRONGTYPE) has no length series; Redis itself answered.
  const detail = problems.length ? `PONG; ${problems.join('; ')}` : 'PONG';
  return { ok: true, detail, listLengths };
}
