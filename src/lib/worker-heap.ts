import v8 from 'node:v8';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts a worker thread whose young generation is `resourceLimits.maxYoungGenerationSizeMb`,
 * under bin/lookout's flags too. The launcher's `--max-semi-space-size=1` keeps the main
 * thread's young generation small at idle, and V8 applies that flag to every isolate it
 * makes, ahead of a worker's resourceLimits: so it is unset while the worker's isolate is
 * made (V8 reads it then), and put back once the worker runs. Resolves when it runs.
 */
export async function startWorker(
  source: string | URL,
  options: WorkerOptions & { resourceLimits: { maxYoungGenerationSizeMb: number } },
  execArgv: readonly string[] = process.execArgv,
): Promise<Worker> {
  const flag = execArgv.find((a) => a.startsWith('--max-semi-space-size='));
  if (flag !== undefined) v8.setFlagsFromString('--max-semi-space-size=0');
  try {
    const worker = new Worker(source, options);
    // Left attached: once it runs, a later error or exit is its owner's to handle, and
    // settles nothing here.
    await new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', (code) =>
        reject(new Error(`the worker thread exited (${code}) before it ran`)),
      );
      worker.once('online', resolve);
    });
    return worker;
  } finally {
    if (flag !== undefined) v8.setFlagsFromString(flag);
  }
}
