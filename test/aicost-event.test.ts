/**
 * The event check's fast path (wellFormed) never passes what the zod schema refuses: on
 * generated events with every field right, wrong, missing or of another type, whenever
 * the fast path takes one, eventSchema takes it too, unchanged.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { eventSchema, wellFormed } from '../src/aicost/event.js';

const anyValue = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.string({ maxLength: 3 }),
  fc.string({ minLength: 60, maxLength: 210 }),
  fc.constantFrom('chat-api', 'gpt-4o', 'a\u0001b', '', '2026-12-06T10:00:00Z'),
  fc.integer({ min: -5, max: 5 }),
  fc.double(),
  fc.constantFrom(1.5, Number.MAX_SAFE_INTEGER + 2, Infinity, NaN, 1e12),
  fc.array(fc.integer(), { maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 2 }),
);
const FIELDS = [...Object.keys(eventSchema.shape), 'extra'];
const good = {
  id: 'e-1',
  service: 'chat-api',
  model: 'gpt-4o',
  provider: 'openai',
  input_tokens: 10,
  output_tokens: 2,
};

describe('the event check', () => {
  it('takes a well-formed event on its fast path', () => {
    assert.deepEqual(wellFormed(good), good);
  });

  it('never passes on its fast path an event the schema refuses', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom(...FIELDS), anyValue, { maxKeys: 8 }),
        fc.boolean(),
        (changes, fromGood) => {
          const input: Record<string, unknown> = fromGood ? { ...good, ...changes } : changes;
          for (const k of Object.keys(input)) if (input[k] === undefined) delete input[k];
          const fast = wellFormed(input);
          if (fast === undefined) return;
          const zod = eventSchema.safeParse(input);
          assert.ok(zod.success, `fast path took ${JSON.stringify(input)}; zod: ${zod.error}`);
          assert.deepEqual(zod.data, fast);
        },
      ),
      { numRuns: 5000 },
    );
  });
});
