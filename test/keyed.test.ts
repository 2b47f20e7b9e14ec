import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { keyedDigest } from '../src/lib/keyed.js';
import { readSecret, readSecretSync } from '../src/lib/secret.js';
import { tempDir } from './helpers/procs.js';

it('keyedDigest: the same parts give the same digest under one key, parts are kept apart, another key differs', () => {
  const d = keyedDigest();
  assert.deepEqual(d('user', 'pw'), d('user', 'pw'));
  assert.equal(d('user', 'pw').length, 32);
  assert.notDeepEqual(d('ab', 'c'), d('a', 'bc'));
  assert.notDeepEqual(d('token'), keyedDigest()('token'));
});

it('readSecret and readSecretSync drop one trailing newline (LF or CRLF), nothing more', async () => {
  const dir = await tempDir('lookout-secret-');
  for (const [text, want] of [
    ['s3cret\n', 's3cret'],
    ['s3cret\r\n', 's3cret'],
    ['s3cret', 's3cret'],
    ['s3cret\n\n', 's3cret\n'],
    [' s3cret \n', ' s3cret '],
  ] as const) {
    const file = join(dir, 'secret');
    await writeFile(file, text);
    assert.equal(await readSecret(file), want, JSON.stringify(text));
    assert.equal(readSecretSync(file), want, JSON.stringify(text));
  }
});
