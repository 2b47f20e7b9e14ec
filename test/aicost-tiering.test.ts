/**
 * lookout run as users run it (bin/lookout, with its Node flags) gives V8 back its own
 * interrupt budget once the AI usage ingest has taken 1,000 events (src/lib/compiler.ts,
 * BusyTiering), and says so once; test/compiler.test.ts shows what the switch does to V8.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { event, postUsage, startAiLookout, type AiLookout } from './helpers/aicost.js';
import { REPO } from './helpers/procs.js';

const SWITCHED = /AI usage ingest is busy: V8 now optimizes hot code at its own pace/g;

async function post(lookout: AiLookout, from: number, n: number): Promise<void> {
  const events = Array.from({ length: n }, (_, i) => event(`tiering-${from + i}`));
  const res = await postUsage(lookout.url, { events });
  assert.equal(res.status, 200, await res.text());
}

describe('the AI usage ingest under bin/lookout', () => {
  let lookout: AiLookout;
  before(async () => {
    lookout = await startAiLookout({ launcher: join(REPO, 'bin/lookout') });
  });
  after(async () => {
    await lookout?.stop();
  });

  it('switches to V8’s own budget at the 1,000th event offered, not before, as its one log line says', async () => {
    await post(lookout, 0, 500);
    await post(lookout, 500, 499);
    // A duplicate is offered too: the 1,000th event.
    assert.equal(lookout.output().match(SWITCHED), null, 'not before 1,000 events');
    await post(lookout, 0, 1);
    assert.equal(lookout.output().match(SWITCHED)?.length, 1, lookout.output());
    await post(lookout, 1000, 500);
    assert.equal(lookout.output().match(SWITCHED)?.length, 1, 'once');
  });
});
