/**
 * The parts of prom-client lookout uses, from its own files rather than its index: the
 * index also loads its Pushgateway (and with it node:https and node:tls), Summary with its
 * t-digest, and the cluster aggregator, none of which lookout calls. Measured in a bare
 * Node 20 beside an HTTP server: the index 0.9–1.0 MB of heap and 2.1–2.6 MB of RSS,
 * these parts 0.55–0.77 MB and 0.8–0.9 MB (docs/performance.md). The classes are the
 * index's own (it re-exports these files), so metrics made either way mix.
 *
 * Every value import of prom-client must come through here for the saving to hold: one
 * `from 'prom-client'` anywhere loads the index again. Types may still be imported from
 * 'prom-client' (`import type` is erased).
 */
import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';

const require = createRequire(import.meta.url);

export type Registry<T extends PromClient.RegistryContentType = PromClient.PrometheusContentType> =
  PromClient.Registry<T>;
export const Registry = require('prom-client/lib/registry') as typeof PromClient.Registry;

export type Counter<T extends string = string> = PromClient.Counter<T>;
export const Counter = require('prom-client/lib/counter') as typeof PromClient.Counter;

export type Gauge<T extends string = string> = PromClient.Gauge<T>;
export const Gauge = require('prom-client/lib/gauge') as typeof PromClient.Gauge;

export const collectDefaultMetrics =
  require('prom-client/lib/defaultMetrics') as typeof PromClient.collectDefaultMetrics;
