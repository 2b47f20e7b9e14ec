import { z } from 'zod';
import { defaultStoragePath } from '../lib/storage.js';
import { duration } from './duration.js';

export const DEFAULT_PORT = 10142;

const listenAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]*):\d{1,5}$/, {
    message: 'expected host:port, e.g. ":10142" or "127.0.0.1:10142"',
    abort: true,
  })
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, {
    message: 'port must be between 0 and 65535',
  });

const webSchema = z
  .strictObject({
    listen_address: listenAddress
      .default(`:${DEFAULT_PORT}`)
      .describe('Address and port to serve /metrics on. An empty host listens on every address.'),
    config_file: z
      .string()
      .min(1)
      .optional()
      .describe(
        "The exporter toolkit's web-config file (TLS, mTLS, basic auth), the one node_exporter takes; --web.config.file overrides it. Unset: plain HTTP, no auth.",
      ),
    max_connections: z
      .number()
      .int()
      .min(1)
      .default(512)
      .describe(
        'Connections open at once; past it a new one is refused (503 on plain HTTP, closed on TLS) until one closes. Kept-alive scrapers keep theirs.',
      ),
    max_header_bytes: z
      .number()
      .int()
      .min(1024)
      .max(1 << 20)
      .default(16 * 1024)
      .describe('Largest request line plus headers, in bytes; larger is answered 431.'),
    header_timeout: duration
      .prefault('10s')
      .describe(
        'Time a new connection has to send its whole request headers (on TLS: to finish its handshake, then as long again for the headers); then 408 and the connection closes. What stops a slowloris client.',
      ),
    request_timeout: duration
      .prefault('30s')
      .describe('Time a client has to send a request body, from the end of its headers; then 408.'),
    keep_alive_timeout: duration
      .prefault('65s')
      .describe(
        "How long an idle kept-alive connection stays open between requests. Above Prometheus' usual 15-60 s interval, so it reuses one connection. One that sends its next request a byte at a time gets 408 after this plus header_timeout.",
      ),
  })
  .refine((w) => w.header_timeout <= w.request_timeout, {
    message: 'header_timeout must not be longer than request_timeout',
    path: ['header_timeout'],
  });

const pathsSchema = z.strictObject({
  procfs: z.string().min(1).default('/proc').describe('Where the host /proc is mounted.'),
  sysfs: z.string().min(1).default('/sys').describe('Where the host /sys is mounted.'),
  rootfs: z
    .string()
    .min(1)
    .default('/')
    .describe('Where the host root filesystem is mounted (e.g. /host in a container).'),
});

/** Built per parse: its default reads STATE_DIRECTORY, which tests set per process. */
const storageSchema = () =>
  z.strictObject({
    path: z
      .string()
      .min(1)
      .default(defaultStoragePath())
      .describe(
        "Directory for state that must survive a restart (each collector gets a subdirectory). `serve` makes it and checks it is writable; `status`, `check` and reports only read it and make nothing. --storage.path overrides it for any command. A relative path is taken from the config file's directory. Default: $STATE_DIRECTORY (set by systemd's StateDirectory= and by the image: /var/lib/lookout), else \"data\" under lookout's package directory (not the working directory, so `lookout status` run anywhere finds what `npm start` keeps).",
      ),
  });

const shutdownSchema = z.strictObject({
  drain_timeout: duration
    .prefault('5s')
    .describe(
      'On SIGTERM, how long requests in flight may take to finish after lookout stops accepting new ones.',
    ),
  flush_timeout: duration
    .prefault('15s')
    .describe(
      "Then how long collectors may take to stop and flush what they keep (a ledger). One that overruns is named in the log and lookout exits 2. Keep drain + flush under systemd's TimeoutStopSec (30s in the unit) and docker's stop_grace_period.",
    ),
});

const logSchema = z.strictObject({
  level: z
    .enum(['debug', 'info', 'warn', 'error'])
    .default('info')
    .describe('Lowest level logged.'),
});

/**
 * Each collector's `collectors.<name>` block, in the order the collectors run. Given by
 * the caller (src/collectors/config.ts passes the registered collectors) rather than
 * imported, so the config layer knows no collector and a test can load a config for
 * collectors of its own.
 */
export type CollectorSchemas = Iterable<readonly [name: string, def: { schema: z.ZodType }]>;

/** The whole config schema, for the given collectors. Built per parse (see storageSchema). */
export function configSchema(collectors: CollectorSchemas) {
  const blocks: Record<string, z.ZodType> = {};
  for (const [name, def] of collectors) blocks[name] = def.schema.prefault({});
  return z.strictObject({
    web: webSchema.prefault({}),
    paths: pathsSchema.prefault({}),
    log: logSchema.prefault({}),
    storage: storageSchema().prefault({}),
    shutdown: shutdownSchema.prefault({}),
    collectors: z.strictObject(blocks).prefault({}),
  });
}

export interface Config {
  web: z.output<typeof webSchema>;
  paths: z.output<typeof pathsSchema>;
  log: z.output<typeof logSchema>;
  storage: z.output<ReturnType<typeof storageSchema>>;
  shutdown: z.output<typeof shutdownSchema>;
  collectors: Record<
    string,
    {
      enabled: boolean;
      interval: number;
      timeout: number;
      /** Present for a collector that declares actions. */
      actions?: { enabled: boolean; max_per_hour: number };
    }
  >;
}
