/**
 * A unix socket in front of an engine's (dockerd's, Podman's) that the test can disturb:
 * cut every connection through it, or hang — accept new connections and never answer
 * nor pass them on, as an engine stuck in its startup or a wedged socket proxy does.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface EngineProxy {
  path: string;
  /** Destroys every connection open through the proxy now (held ones too). */
  cut(): void;
  /** From now on, new connections are accepted and held unanswered (true) or passed on (false). */
  hang(on: boolean): void;
  /** Connections accepted while hanging, in all; and how many of them are still open. */
  held(): { accepted: number; open: number };
  close(): Promise<void>;
}

export async function engineProxy(target: string, path: string): Promise<EngineProxy> {
  const open = new Set<Socket>();
  const holding = new Set<Socket>();
  let hanging = false;
  let accepted = 0;
  const server: Server = createServer((client) => {
    client.on('error', () => client.destroy());
    if (hanging) {
      accepted++;
      holding.add(client);
      open.add(client);
      client.on('close', () => {
        holding.delete(client);
        open.delete(client);
      });
      // Read (and drop) the request, so the client's close is seen: unread bytes would
      // hold back the end of the stream.
      client.resume();
      return;
    }
    const up = connect(target);
    for (const s of [client, up]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => s.destroy());
    }
    client.pipe(up).pipe(client);
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    path,
    cut: () => {
      for (const s of open) s.destroy();
    },
    hang: (on) => {
      hanging = on;
    },
    held: () => ({ accepted, open: holding.size }),
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
