/**
 * Run by test/timex.test.ts as an unprivileged user (nobody, no capabilities): refreshes
 * the timex collector once through the real addon and prints its uid, its effective
 * capabilities and the exposition as JSON.
 */
import { readFileSync } from 'node:fs';
import { createTimexCollector } from '../../src/collectors/timex.js';
import { createLogger } from '../../src/lib/log.js';

const log = createLogger('debug', {}, () => undefined);
const ctx = { signal: new AbortController().signal, deadline: Infinity, log };
const registry = await createTimexCollector().collect!(ctx);
const capEff = /^CapEff:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
process.stdout.write(
  JSON.stringify({ uid: process.getuid?.(), capEff, text: await registry.metrics() }),
);
