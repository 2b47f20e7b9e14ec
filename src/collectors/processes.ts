import fs from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import {
  COMMON_PROCESS_STATES,
  parseAuxvPageSize,
  parsePidStat,
  processStateName,
} from '../lib/procfs.js';
import type { Logger } from '../lib/log.js';
import { errorText } from '../lib/log.js';
import {
  CollectorError,
  collectorSchema,
  registerCollector,
  type Collector,
  type HostPaths,
} from './collector.js';

/** Longest `name` label value; comm is 15 bytes for user processes, longer only for kernel threads. */
export const NAME_LABEL_MAX = 64;
/** The kernel keeps TASK_COMM_LEN - 1 = 15 bytes of a command name. */
const COMM_MAX_BYTES = 15;
/** /proc/<pid>/stat reads in flight: enough to keep the 4 libuv pool threads busy, no more. */
const WALK_CONCURRENCY = 4;
/** /proc/<pid>/stat is ~300 bytes; a 4 KiB buffer per worker reads it in one call. */
const STAT_BUFFER_BYTES = 4096;
const DEFAULT_PAGE_SIZE = 4096;

export const processesSchema = collectorSchema(
  { enabled: true, interval: '15s', timeout: '10s' },
  {
    watch: z
      .array(z.string().min(1).max(NAME_LABEL_MAX))
      .default(['nginx', 'dockerd'])
      .describe(
        'Process names to count in lookout_process_count{name} (0 when none runs), matched on the kernel command name (comm, first 15 bytes).',
      ),
    top: z
      .number()
      .int()
      .min(0)
      .max(50)
      .default(5)
      .describe(
        'How many of the biggest processes by resident memory to export as lookout_top_process_resident_memory_bytes{rank,name}; 0 turns it off.',
      ),
  },
);

export type ProcessesConfig = z.output<typeof processesSchema>;

/** The process exited while we walked /proc: not a failure, and not counted. */
function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ESRCH';
}

/** /proc mounted with hidepid: other users' processes exist but are not ours to read. */
function isHidden(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM';
}

const HIDDEN = Symbol('hidden');

/**
 * Reads a small /proc file with one open, one read into a reused buffer, one close:
 * undefined when the process has gone, HIDDEN when we may not read it. Callback fs rather than FileHandle: on a walk of
 * every pid the FileHandle bookkeeping costs a quarter more CPU, and readFile adds an
 * fstat and a second read per file.
 */
function readSmall(path: string, buf: Buffer): Promise<string | undefined | typeof HIDDEN> {
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) =>
      isGone(err) ? resolve(undefined) : isHidden(err) ? resolve(HIDDEN) : reject(err);
    fs.open(path, 'r', (openErr, fd) => {
      if (openErr) return fail(openErr);
      fs.read(fd, buf, 0, buf.length, 0, (readErr, bytesRead) => {
        fs.close(fd, (closeErr) => {
          if (readErr) return fail(readErr);
          if (closeErr) return fail(closeErr);
          if (bytesRead === 0) return resolve(undefined);
          if (bytesRead < buf.length) return resolve(buf.toString('utf8', 0, bytesRead));
          // Longer than the buffer (not seen in practice): read it whole.
          fs.readFile(path, 'utf8', (err, text) => (err ? fail(err) : resolve(text)));
        });
      });
    });
  });
}

/** The kernel's page size, from our own auxiliary vector; the host kernel is ours too. */
export async function readPageSize(log: Logger): Promise<number> {
  try {
    const auxv = await readFile('/proc/self/auxv');
    const wordBytes = ['x64', 'arm64', 'ppc64', 's390x', 'riscv64', 'loong64', 'mips64el'].includes(
      process.arch,
    )
      ? 8
      : 4;
    const size = parseAuxvPageSize(auxv, wordBytes, endianness() === 'LE');
    if (size) return size;
    log.warn('no AT_PAGESZ in /proc/self/auxv; assuming 4096-byte pages');
  } catch (err) {
    log.warn('cannot read /proc/self/auxv; assuming 4096-byte pages', { err: errorText(err) });
  }
  return DEFAULT_PAGE_SIZE;
}

function commForm(name: string): string {
  const bytes = Buffer.from(name);
  return bytes.length > COMM_MAX_BYTES ? bytes.subarray(0, COMM_MAX_BYTES).toString() : name;
}

export function createProcessesCollector(
  config: ProcessesConfig,
  paths: HostPaths,
  pageSize: number,
): Collector {
  let warnedHidden = false;
  // A watched name longer than 15 bytes is matched on the truncated comm the kernel keeps.
  const watchedByComm = new Map<string, string[]>();
  for (const name of new Set(config.watch)) {
    const key = commForm(name);
    watchedByComm.set(key, [...(watchedByComm.get(key) ?? []), name]);
  }

  return {
    async update(registry: Registry, { signal, log }) {
      let pids: string[];
      try {
        // Only /proc/<pid>: threads live under /proc/<pid>/task and are not listed here.
        pids = (await readdir(paths.procfs)).filter((e) => /^\d+$/.test(e));
      } catch (err) {
        throw new CollectorError(`read ${paths.procfs}`, { cause: err });
      }

      const states = new Map<string, number>(COMMON_PROCESS_STATES.map((s) => [s, 0]));
      const counts = new Map<string, number>(config.watch.map((n) => [n, 0]));
      const resident: { pid: number; name: string; bytes: number }[] = [];

      // Buffers per refresh, not per collector: a refresh abandoned at its timeout may still
      // be reading when the next one starts.
      const buffers = Array.from({ length: WALK_CONCURRENCY }, () =>
        Buffer.allocUnsafe(STAT_BUFFER_BYTES),
      );
      let next = 0;
      let unreadable = 0;
      const worker = async (buf: Buffer) => {
        while (next < pids.length) {
          signal.throwIfAborted();
          const path = join(paths.procfs, pids[next++]!, 'stat');
          let text: string | undefined | typeof HIDDEN;
          try {
            text = await readSmall(path, buf);
          } catch (err) {
            throw new CollectorError(`read ${path}`, { cause: err });
          }
          if (text === undefined) continue; // exited mid-walk
          if (text === HIDDEN) {
            unreadable++;
            continue;
          }
          const p = parsePidStat(text);
          const state = processStateName(p.state);
          states.set(state, (states.get(state) ?? 0) + 1);
          for (const name of watchedByComm.get(p.comm) ?? [])
            counts.set(name, counts.get(name)! + 1);
          if (config.top > 0 && p.rssPages > 0)
            resident.push({ pid: p.pid, name: p.comm, bytes: p.rssPages * pageSize });
        }
      };
      await Promise.all(buffers.map(worker));
      if (unreadable > 0 && !warnedHidden) {
        // Once: a host with hidepid stays that way, and the warning would repeat every refresh.
        warnedHidden = true;
        log.warn(
          'some processes cannot be read (/proc mounted with hidepid?); counts cover the visible ones only',
          {
            unreadable,
          },
        );
      }

      const registers = [registry];
      const byState = new Gauge({
        name: 'lookout_processes',
        help: 'Processes (not threads) in each state; zombie counts processes nobody has reaped.',
        labelNames: ['state'],
        registers,
      });
      for (const [state, n] of states) byState.set({ state }, n);

      const watched = new Gauge({
        name: 'lookout_process_count',
        help: 'Processes whose command name is the watched name (0 when none runs).',
        labelNames: ['name'],
        registers,
      });
      for (const [name, n] of counts) watched.set({ name }, n);

      if (config.top > 0) {
        const top = new Gauge({
          name: 'lookout_top_process_resident_memory_bytes',
          help: 'Resident memory of the biggest processes; rank 1 is the biggest.',
          labelNames: ['rank', 'name'],
          registers,
        });
        resident.sort((a, b) => b.bytes - a.bytes || a.pid - b.pid);
        resident.slice(0, config.top).forEach((p, i) => {
          top.set({ rank: String(i + 1), name: p.name.slice(0, NAME_LABEL_MAX) }, p.bytes);
        });
      }
    },
  };
}

registerCollector({
  name: 'processes',
  description:
    'Processes by state (zombies), a count per watched name, and the biggest by resident memory (lookout_processes, lookout_process_count, lookout_top_process_resident_memory_bytes)',
  schema: processesSchema,
  create: async (config, paths, log) =>
    createProcessesCollector(config, paths, await readPageSize(log)),
});
