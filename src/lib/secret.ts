import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** Written by `echo` or an editor: the one trailing newline is not part of the secret. */
function withoutFinalNewline(text: string): string {
  return text.replace(/\r?\n$/, '');
}

/** A secret file's contents without the newline an editor or `echo` leaves. */
export async function readSecret(file: string): Promise<string> {
  return withoutFinalNewline(await readFile(file, 'utf8'));
}

/** readSecret, for what is read once at start. */
export function readSecretSync(file: string): string {
  return withoutFinalNewline(readFileSync(file, 'utf8'));
}
