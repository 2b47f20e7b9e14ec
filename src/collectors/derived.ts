/**
 * What one collector's config implies for another's, applied once after validation (by
 * the loader in ./config.ts) so every collector still reads only its own block. It lives
 * beside the collectors because it reads their internals; the config layer only runs it.
 */
import type { Config } from '../config/schema.js';
import { targetLabel as probeLabel, type ProbeTargetConfig } from './probes.js';
import { parseAddress, targetLabel as tlsLabel, TARGET_LABEL_MAX, type TlsTarget } from './tls.js';

type Block = Config['collectors'][string];

/**
 * An https probe target's certificate is watched by the TLS collector too (expiry,
 * trust, name), under the probe's own `target` label, so one name joins a probe's
 * success with its certificate's days left. A server the TLS targets already list (the
 * same address and name) or a label they already use is left as the user wrote it.
 */
export function withHttpsProbeCertificates(config: Config): Config {
  const probes = config.collectors.probes as (Block & { targets: ProbeTargetConfig[] }) | undefined;
  const tls = config.collectors.tls as (Block & { targets: TlsTarget[] }) | undefined;
  if (!probes?.enabled || !tls?.enabled) return config;
  const labels = new Set(tls.targets.map(tlsLabel));
  const servers = new Set(
    tls.targets.flatMap((t) => ('address' in t ? [serverKey(t.address, t.server_name)] : [])),
  );
  const added: TlsTarget[] = [];
  for (const p of probes.targets) {
    if (p.kind !== 'http') continue;
    const url = new URL(p.url);
    if (url.protocol !== 'https:') continue;
    const address = `${url.hostname}:${url.port || '443'}`;
    const name = probeLabel(p).slice(0, TARGET_LABEL_MAX);
    const server = serverKey(address, undefined);
    if (labels.has(name) || servers.has(server)) continue;
    labels.add(name);
    servers.add(server);
    added.push({ address, name });
  }
  if (added.length === 0) return config;
  return {
    ...config,
    collectors: {
      ...config.collectors,
      tls: { ...tls, targets: [...tls.targets, ...added] } as Block,
    },
  };
}

/** One TLS server as the collector would reach it: host, port, and the name it checks. */
function serverKey(address: string, serverName: string | undefined): string {
  const { host, port } = parseAddress(address)!;
  return `${host}:${port} ${serverName ?? host}`;
}
