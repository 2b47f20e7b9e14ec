/** TCP: does the port accept a connection. */
import { z } from 'zod';
import { isAddress, probeTcp } from '../../lib/probe-tcp.js';
import { defineProber } from './prober.js';

/** host:port, for every kind that connects to one. */
export const address = z
  .string()
  .refine(isAddress, { message: 'expected host:port, e.g. "127.0.0.1:6379" or "[::1]:6379"' });

export const prober = defineProber({
  kind: 'tcp',
  title: 'TCP',
  fields: { address: address.describe('host:port to connect to.') },
  label: (t) => t.address,
  check: (t, { signal }) => probeTcp(t.address, signal),
});
