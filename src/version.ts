import { readFileSync } from 'node:fs';

// Read once at start-up from the package.json that ships beside src/ and dist/.
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;
