/**
 * Pure helpers for figures: a quantile of sorted samples and a process's resident memory
 * from /proc. Apart from bench/lib.ts, which stops every descendant process on exit when
 * imported, so a test may import these without taking that cleanup on.
 */
import { readFile } from 'node:fs/promises';

export function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** A process's resident memory, in bytes. */
export async function rssBytes(pid: number): Promise<number> {
  return (await residentBytes(pid)).rss;
}

/**
 * Resident memory and its two parts: anonymous (the process's own heap and stacks) and
 * file pages (the node binary and its libraries, shared with every other node process).
 */
export async function residentBytes(
  pid: number,
): Promise<{ rss: number; anon: number; file: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}
