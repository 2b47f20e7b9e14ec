import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sampleValue } from './helpers/exposition.js';
import { createHungMount, type HungMount } from './helpers/hungmount.js';
import { eventually, startLookout, type Running } from './helpers/procs.js';

const isRoot = process.getuid?.() === 0;

async function metrics(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2000) });
  return res.text();
}

describe(
  'a real mount whose statfs never returns (FUSE server that never answers)',
  { skip: !isRoot && 'needs root to mount' },
  () => {
    let hung: HungMount;
    let lookout: Running;
    before(async () => {
      hung = createHungMount();
      lookout = await startLookout(`collectors:
  host: {interval: 1s, timeout: 1s}
  processes: {interval: 1s, timeout: 1s}
  filesystem: {interval: 1s, timeout: 1s, statfs_timeout: 300ms}
`);
    });
    after(async () => {
      await lookout?.stop();
      hung?.remove();
    });

    it('marks that mount with device_error 1 and keeps serving every other mount and collector', async () => {
      const labels = { mountpoint: hung.mountpoint, device: 'lookout-hung', fstype: 'fuse' };
      const text = await eventually(
        async () => {
          const t = await metrics(lookout.url);
          return sampleValue(t, 'lookout_filesystem_device_error', labels) === 1 ? t : undefined;
        },
        15_000,
        'lookout_filesystem_device_error 1 for the hung mount',
      );
      assert.equal(
        sampleValue(text, 'lookout_filesystem_size_bytes', labels),
        undefined,
        'no size for a hung mount',
      );
      const rootSize = sampleValue(text, 'lookout_filesystem_size_bytes', { mountpoint: '/' });
      assert.ok(rootSize !== undefined && rootSize > 0, 'the root filesystem is still measured');
      for (const c of ['host', 'filesystem', 'processes']) {
        assert.equal(
          sampleValue(text, 'lookout_collector_success', { collector: c }),
          1,
          `${c} keeps succeeding`,
        );
      }
    });

    it('does not ask the hung mount again while its call is stuck', async () => {
      // Three more refreshes (each a new last-success time), then still one warning: the
      // stuck statfs was not started again.
      const refreshes = new Set<number>();
      const t = await eventually(
        async () => {
          const text = await metrics(lookout.url);
          const at = sampleValue(text, 'lookout_collector_last_success_timestamp_seconds', {
            collector: 'filesystem',
          });
          if (at !== undefined) refreshes.add(at);
          return refreshes.size > 3 ? text : undefined;
        },
        15_000,
        'three more refreshes of the filesystem collector',
      );
      const warnings = lookout.output().match(/statfs did not return/g) ?? [];
      assert.equal(warnings.length, 1, lookout.output());
      assert.equal(sampleValue(t, 'lookout_collector_success', { collector: 'filesystem' }), 1);
    });

    it('notices when the hung call finally returns', async () => {
      hung.release(); // the kernel fails the pending statfs with ENOTCONN
      await eventually(
        async () => /hung statfs returned/.test(lookout.output()),
        10_000,
        'the log line',
      );
    });
  },
);

describe(
  'shutdown with a statfs stuck in the kernel',
  { skip: !isRoot && 'needs root to mount' },
  () => {
    it('SIGTERM still ends lookout promptly, by signal, naming the stuck call', async () => {
      const hung = createHungMount();
      try {
        const lookout = await startLookout(
          'collectors:\n  filesystem: {interval: 1s, timeout: 1s, statfs_timeout: 200ms}\n',
        );
        await eventually(
          async () => /statfs did not return/.test(lookout.output()),
          10_000,
          'the stuck statfs',
        );
        const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
          lookout.child.once('exit', (code, signal) => resolve({ code, signal })),
        );
        lookout.child.kill('SIGTERM');
        // Past this the test kills it; then `signal` is SIGKILL and the test fails.
        const kill = setTimeout(() => lookout.child.kill('SIGKILL'), 5000);
        const end = await exited;
        clearTimeout(kill);
        // A libuv thread stuck in statfs cannot be joined by exit(): lookout ends itself
        // as an unhandled SIGTERM would (143 for systemd and docker) and says why.
        assert.deepEqual(end, { code: null, signal: 'SIGTERM' }, lookout.output());
        assert.match(
          lookout.output(),
          /msg="exiting by signal: calls stuck in the kernel cannot return" calls="filesystem statfs: \/[^"]*lookout-hung[^"]*"/,
        );
      } finally {
        hung.remove();
      }
    });
  },
);
