/**
 * Every probe kind, from its `kind:` to its entry. A new kind is a file beside this one
 * exporting `prober` (see prober.ts) and a line here; the config schema, the `kind`
 * label, the metric declarations and the docs all read this table.
 */
import type { Prober } from './prober.js';
import { prober as http } from './http.js';
import { prober as postgres } from './postgres.js';
import { prober as redis } from './redis.js';
import { prober as sqlite } from './sqlite.js';
import { prober as tcp } from './tcp.js';

/** Kind to entry; a table built by `probeTable` from the entries, so a key is always its entry's kind. */
export type ProbeTable = Readonly<Record<string, Prober>>;

export function probeTable<const P extends readonly Prober[]>(
  ...probers: P
): { readonly [E in P[number] as E['kind']]: E } {
  const table: Record<string, Prober> = {};
  for (const p of probers) {
    if (table[p.kind] !== undefined) throw new Error(`probe kind "${p.kind}" listed twice`);
    table[p.kind] = p;
  }
  return table as { readonly [E in P[number] as E['kind']]: E };
}

export const PROBERS = probeTable(http, tcp, redis, postgres, sqlite);

/** A target of any kind in `T`, as the config schema outputs it. */
export type TargetIn<T> =
  T extends Readonly<Record<string, unknown>>
    ? { [K in keyof T]: T[K] extends Prober<infer C> ? C : never }[keyof T]
    : never;
