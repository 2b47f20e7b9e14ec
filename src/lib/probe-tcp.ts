/**
 * TCP connect probe, and the socket helper the Redis probe shares: one connection per
 * probe, torn down at the target's deadline, never pooled (a probe asks "does it answer
 * now?", so a kept connection would hide a server that stopped accepting).
 */
import { connect, type Socket } from 'node:net';

/** What a probe found: a failed probe throws instead; `ok: false` is an answer that is wrong. */
export interface ProbeOutcome {
  ok: boolean;
  /** One line for `lookout check` and the log: `HTTP 200`, `PONG`, `expected 200 got 500`. */
  detail: string;
}

/** `host:port` or `[v6]:port` split; the config schema has checked the form. */
export function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(i + 1)) };
}

/** Whether `address` is `host:port` with a port in 1..65535. */
export function isAddress(address: string): boolean {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(address);
  return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
}

/** Rejects with the signal's reason when it aborts; for calls that take no signal. */
export function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

/** A connected socket, or a rejection (refused, unreachable, the signal's deadline). */
export function openSocket(address: string, signal: AbortSignal): Promise<Socket> {
  const { host, port } = splitAddress(address);
  return new Promise<Socket>((resolve, reject) => {
    signal.throwIfAborted();
    const socket = connect({ host, port });
    const onAbort = () => {
      socket.destroy();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      resolve(socket);
    });
    socket.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(err);
    });
  });
}

export async function probeTcp(address: string, signal: AbortSignal): Promise<ProbeOutcome> {
  const socket = await openSocket(address, signal);
  socket.destroy();
  return { ok: true, detail: 'connected' };
}
