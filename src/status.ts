import type { Config } from './config/schema.js';
// PLACEHOLDER — being written.
export async function status(_config: Config, out: NodeJS.WritableStream): Promise<number> {
  out.write('todo\n');
  return 0;
}
