/**
 * The abusive clients of test/helpers/abuse.ts in a process of their own, which
 * bench/abuse.ts runs at the lowest CPU priority (nice 19). On 127.0.0.1 the abuser
 * shares this machine's two cores with lookout and the scrapers; an abuser elsewhere
 * would not, and measured here two CPU hogs alone took the scrapers of a bare node:http
 * server from p99 1.8 to 9-10 ms. At nice 19 the abuser still takes every cycle the
 * others leave, so lookout gets all the abuse it can read.
 *
 *   argv[2]: JSON { kind: 'plain' | 'tls', target: AbuseTarget, user?: string }
 *   stdout:  JSON Phase[], start and end as Unix time in ms (the caller's clock differs)
 */
import { plainAbuse, tlsAbuse, type AbuseTarget, type Phase } from '../test/helpers/abuse.js';

const { kind, target, user } = JSON.parse(process.argv[2]!) as {
  kind: 'plain' | 'tls';
  target: AbuseTarget;
  user?: string;
};
const result = kind === 'plain' ? await plainAbuse(target) : await tlsAbuse(target, user!);
const phases: Phase[] = Object.values(result).map((p: Phase) => ({
  ...p,
  start: performance.timeOrigin + p.start,
  end: performance.timeOrigin + p.end,
}));
process.stdout.write(JSON.stringify(phases));
