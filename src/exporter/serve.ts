import type { Server } from 'node:http';
import type { Config } from '../config/schema.js';
import type { Logger } from '../lib/log.js';
import { errorText } from '../lib/log.js';
import { VERSION } from '../version.js';
import { createApp } from './app.js';
import { buildRunner } from './build.js';
import { splitListenAddress } from './listen.js';

/** Runs the exporter until SIGTERM/SIGINT; resolves with the exit code. */
export async function serve(config: Config, log: Logger): Promise<number> {
  const runner = await buildRunner(config, log);
  const app = createApp(runner, VERSION);
  const { host, port } = splitListenAddress(config.web.listen_address);

  let server: Server;
  try {
    server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen({ host, port });
      s.once('listening', () => resolve(s));
      s.once('error', reject);
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'EADDRINUSE'
        ? 'is already in use; stop what listens there or pick another with --web.listen-address'
        : code === 'EACCES'
          ? 'needs privileges; pick a port above 1023'
          : code === 'EADDRNOTAVAIL'
            ? 'is not an address of this host'
            : errorText(err);
    process.stderr.write(`lookout: cannot listen on ${config.web.listen_address}: ${why}\n`);
    await runner.stop();
    return 2;
  }
  // Prometheus reuses its connection between scrapes; keep it open across a 15–60 s
  // interval rather than reconnecting. Shutdown closes these at once (closeAllConnections).
  server.keepAliveTimeout = 65_000;
  log.info('listening', { address: config.web.listen_address, version: VERSION });
  runner
    .start()
    .catch((err: unknown) => log.error('collectors did not start', { err: errorText(err) }));

  return new Promise<number>((resolve) => {
    const shutdown = (signal: string) => {
      log.info('shutting down', { signal });
      const force = setTimeout(() => resolve(0), 900);
      force.unref();
      server.close();
      server.closeAllConnections();
      void runner.stop().then(() => {
        clearTimeout(force);
        resolve(0);
      });
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
}
