/**
 * Run by test/collectors.test.ts as an unprivileged user (nobody) against a /proc mounted
 * with hidepid: refreshes the processes collector twice and the host collector once on
 * the procfs given as its argument, and prints what they exported and logged as JSON.
 */
import { readdirSync } from 'node:fs';
import { createHostCollector, hostSchema } from '../../src/collectors/host.js';
import { createProcessesCollector, processesSchema } from '../../src/collectors/processes.js';
import { createLogger } from '../../src/lib/log.js';
import { polled } from './fuzz.js';

const procfs = process.argv[2];
if (procfs === undefined) throw new Error('usage: unprivileged-collect.ts PROCFS');
const lines: string[] = [];
const log = createLogger('debug', {}, (line) => lines.push(line));
const ctx = { signal: new AbortController().signal, deadline: Infinity, log };
const paths = { procfs, sysfs: '/sys', rootfs: '/' };

const processes = polled(
  createProcessesCollector(processesSchema.parse({ watch: ['node'], top: 50 }), paths, 4096),
);
const listed = readdirSync(procfs).filter((e) => /^\d+$/.test(e)).length;
const walks = [
  await (await processes.collect!(ctx)).metrics(),
  await (await processes.collect!(ctx)).metrics(),
];
const host = polled(createHostCollector(hostSchema.parse({}), paths));
const hostText = await (await host.collect!(ctx)).metrics();
await processes.close?.();
await host.close?.();
process.stdout.write(
  JSON.stringify({ uid: process.getuid?.(), listed, walks, host: hostText, log: lines }),
);
