import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseExposition } from './helpers/exposition.js';
import {
  eventually,
  promQuery,
  startLookout,
  startPrometheus,
  type Running,
} from './helpers/procs.js';

describe('a real Prometheus scraping lookout', () => {
  let lookout: Running;
  let prom: Running;
  before(async () => {
    lookout = await startLookout(
      'collectors:\n  host: {interval: 1s, timeout: 1s}\n  filesystem: {interval: 1s, timeout: 1s}\n  processes: {interval: 1s, timeout: 1s}\n',
    );
    prom = await startPrometheus(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: lookout
    static_configs:
      - targets: ['127.0.0.1:${lookout.port}']
`);
  });
  after(async () => {
    await prom?.stop();
    await lookout?.stop();
  });

  it('sees the target up and every host series, over OpenMetrics', async () => {
    await eventually(
      async () => (await promQuery(prom.url, 'up{job="lookout"} == 1')).length === 1,
      30_000,
      'up{job="lookout"} == 1',
    );
    // Prometheus 2.42 asks for OpenMetrics first, so this also proves the format parses.
    // Asked the way Prometheus asks, lookout answers in OpenMetrics:
    const om = await fetch(`${lookout.url}/metrics`, {
      headers: {
        accept:
          'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
      },
    });
    assert.match(om.headers.get('content-type') ?? '', /^application\/openmetrics-text/);
    const families = parseExposition(await om.text());
    assert.equal(families.find((f) => f.name === 'lookout_cpu_seconds')?.type, 'counter');
    const series = [
      'lookout_cpu_seconds_total{mode="idle"}',
      'lookout_cpus',
      'lookout_load1',
      'lookout_load5',
      'lookout_load15',
      'lookout_memory_total_bytes',
      'lookout_memory_available_bytes',
      'lookout_swap_total_bytes',
      'lookout_swap_free_bytes',
      'lookout_filesystem_size_bytes{mountpoint="/"}',
      'lookout_filesystem_avail_bytes{mountpoint="/"}',
      'lookout_filesystem_files{mountpoint="/"}',
      'lookout_filesystem_files_free{mountpoint="/"}',
      'lookout_filesystem_readonly{mountpoint="/"}',
      'lookout_network_receive_bytes_total',
      'lookout_network_transmit_bytes_total',
      'lookout_boot_time_seconds',
      'lookout_host_info',
      'lookout_processes{state="zombie"}',
      'lookout_watched_processes{name="nginx"}',
      'lookout_top_process_resident_memory_bytes{rank="1"}',
      'lookout_collector_success{collector="host"}',
      'lookout_build_info',
      'process_resident_memory_bytes',
    ];
    for (const s of series) {
      // eventually() fails naming the series when it never appears; what it returns is
      // checked for a real number (a NaN or ±Inf here would be a broken reading).
      const result = await eventually(
        async () => {
          const r = await promQuery(prom.url, s);
          return r.length > 0 ? r : undefined;
        },
        15_000,
        s,
      );
      for (const r of result)
        assert.ok(Number.isFinite(Number(r.value[1])), `${s}: ${JSON.stringify(r)}`);
    }
    const scrape = await promQuery(prom.url, 'scrape_samples_scraped{job="lookout"}');
    assert.ok(Number(scrape[0]?.value[1]) > 50, 'a real number of samples per scrape');
    const success = await promQuery(prom.url, 'min(lookout_collector_success)');
    assert.equal(success[0]?.value[1], '1', 'every collector succeeds on a healthy host');
  });
});
