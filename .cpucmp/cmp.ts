// Scratch: CPU of old lookout (08708a8), new lookout, node_exporter, scraped by one Prometheus every 15 s.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, REPO, startNodeExporter, startProcess, startPrometheus, tempDir } from '../test/helpers/procs.js';
async function cpu(pid: number) { let ns = 0; for (const t of await readdir(`/proc/${pid}/task`)) { try { ns += Number((await readFile(`/proc/${pid}/task/${t}/schedstat`, 'utf8')).split(' ')[0]); } catch {} } return ns / 1e9; }
async function start(cmd: string, args: string[]) { const port = await freePort(); const dir = await tempDir(); return startProcess(cmd, [...args, '--web.listen-address', `127.0.0.1:${port}`], { readyPath: '/healthz', port, dir }); }
const variant = process.env.VARIANT ?? '';
const oldL = await start(process.execPath, ['--max-semi-space-size=1','--max-old-space-size=64','--no-opt', '/work/wtold/dist/cli.js', 'serve']);
const newL = await start(join(REPO, 'bin/lookout'), ['serve']);
const ne = await startNodeExporter();
const targets = [oldL, newL, ne].map((t) => `'127.0.0.1:${t.port}'`).join(',');
const prom = await startPrometheus(`global: {scrape_interval: 15s}\nscrape_configs:\n- job_name: x\n  static_configs: [{targets: [${targets}]}]\n`);
await new Promise((r) => setTimeout(r, 60_000));
const names = ['old', 'new', 'node_exporter'];
const procs = [oldL, newL, ne];
for (let m = 0; m < Number(process.env.MINUTES ?? 3); m++) {
  const a = await Promise.all(procs.map((p) => cpu(p.child.pid!)));
  await new Promise((r) => setTimeout(r, 60_000));
  const b = await Promise.all(procs.map((p) => cpu(p.child.pid!)));
  console.log(names.map((n, i) => `${n} ${((b[i]! - a[i]!) * 1000 / 4).toFixed(1)} ms/15s`).join('  '));
}
for (const p of [prom, ...procs]) await p.stop();
process.exit(0);
