/**
 * src/lib/tail.ts on real files in a temp directory: where it starts, appends, partial
 * lines, and every kind of rotation — each checked for no line lost and none twice.
 * Waits are on conditions (the lines arrived), never fixed sleeps.
 */
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, copyFile, rename, rm, truncate, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { Tail, forEachLine, type TailOptions } from '../src/lib/tail.js';
import { eventually, tempDir } from './helpers/procs.js';

const tails: Tail[] = [];
afterEach(async () => {
  await Promise.all(tails.splice(0).map((t) => t.stop()));
});

async function follow(path: string, opts: Partial<TailOptions> = {}) {
  const lines: string[] = [];
  const t = new Tail(path, {
    pollMs: 50,
    drainMs: 300,
    ...opts,
    onLines: (block) => forEachLine(block, (l) => lines.push(l)),
  });
  tails.push(t);
  await t.start();
  return { t, lines };
}

const seq = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `line ${from + i}`);
const text = (ls: string[]) => ls.map((l) => l + '\n').join('');

/**
 * Waits until the tail has as many lines as expected, then for one more pass over
 * everything written (so a late duplicate would be in), then compares.
 */
async function got(t: Tail, lines: string[], expected: string[], what: string): Promise<void> {
  await eventually(async () => lines.length >= expected.length, 5000, what);
  await t.settled();
  assert.deepEqual([...lines].sort(), [...expected].sort(), what);
}

for (const watch of [true, false]) {
  describe(`tail (${watch ? 'fs.watch and polling' : 'polling only'})`, () => {
    it('starts at the end of an existing file and follows appends', async () => {
      const dir = await tempDir();
      const path = join(dir, 'a.log');
      await writeFile(path, text(seq(0, 100)));
      const { t, lines } = await follow(path, { watch });
      await appendFile(path, text(seq(100, 110)));
      await got(t, lines, seq(100, 110), 'the appended lines only');
    });

    it('holds a partial last line until its newline arrives', async () => {
      const dir = await tempDir();
      const path = join(dir, 'a.log');
      await writeFile(path, '');
      const { t, lines } = await follow(path, { watch });
      await appendFile(path, 'first\nsec');
      await eventually(async () => lines.length === 1, 5000, 'the complete line');
      await t.settled();
      assert.deepEqual(lines, ['first']);
      await appendFile(path, 'ond\r\nthi');
      await appendFile(path, 'rd\n');
      await got(t, lines, ['first', 'second', 'third'], 'the held line joined');
    });

    it('reads a file that does not exist yet from its start', async () => {
      const dir = await tempDir();
      const path = join(dir, 'later.log');
      const { t, lines } = await follow(path, { watch });
      await writeFile(path, text(seq(0, 5)));
      await got(t, lines, seq(0, 5), 'all of the new file');
    });

    it('rename rotation: the old file is read to its end, writes after the rename included, and the new one', async () => {
      const dir = await tempDir();
      const path = join(dir, 'access.log');
      await writeFile(path, '');
      const { t, lines } = await follow(path, { watch });
      // A writer holding the file open, as nginx does: it keeps writing to the renamed
      // file until it reopens.
      const writer = await open(path, 'a');
      await writer.write(text(seq(0, 10)));
      await rename(path, path + '.1');
      await writer.write(text(seq(10, 20)));
      await writeFile(path, ''); // logrotate `create`
      await writer.write(text(seq(20, 30))); // still the old fd: before the reopen
      await writer.close();
      await appendFile(path, text(seq(30, 40))); // after the reopen
      await got(t, lines, seq(0, 40), 'every line once, across the rotation');
    });

    it('copy-truncate: reads the file again from its start', async () => {
      const dir = await tempDir();
      const path = join(dir, 'access.log');
      await writeFile(path, '');
      const { t, lines } = await follow(path, { watch });
      await appendFile(path, text(seq(0, 50)));
      await got(t, lines, seq(0, 50), 'before the copy');
      await copyFile(path, path + '.1');
      await truncate(path, 0);
      await t.settled();
      await appendFile(path, text(seq(50, 55)));
      await got(t, lines, seq(0, 55), 'every line once, across the truncation');
    });

    it('a deleted file that appears again later is read from its start', async () => {
      const dir = await tempDir();
      const path = join(dir, 'access.log');
      await writeFile(path, '');
      const { t, lines } = await follow(path, { watch });
      await appendFile(path, text(seq(0, 3)));
      await got(t, lines, seq(0, 3), 'before the delete');
      await rm(path);
      await t.settled();
      await writeFile(path, text(seq(3, 6)));
      await got(t, lines, seq(0, 6), 'the new file after the delete');
    });

    it('a directory that does not exist yet', async () => {
      const dir = await tempDir();
      const path = join(dir, 'sub', 'access.log');
      const { t, lines } = await follow(path, { watch });
      const { mkdir } = await import('node:fs/promises');
      await mkdir(join(dir, 'sub'));
      await writeFile(path, text(seq(0, 4)));
      await got(t, lines, seq(0, 4), 'the file in the new directory');
    });
  });
}

describe('tail errors', () => {
  it('reports a path it cannot read, keeps trying, and recovers when it can', async () => {
    const dir = await tempDir();
    const path = join(dir, 'access.log');
    const { mkdir, rmdir } = await import('node:fs/promises');
    await mkdir(path); // a directory where the log should be: open works, read fails
    const errors: string[] = [];
    let recovered = 0;
    const { t, lines } = await follow(path, {
      onError: (e) => errors.push((e as NodeJS.ErrnoException).code ?? e.message),
      onRecovered: () => recovered++,
    });
    await eventually(async () => errors.length >= 2, 5000, 'the error reported, and retried');
    assert.equal(errors[0], 'EISDIR');
    await rmdir(path);
    await writeFile(path, text(seq(0, 3)));
    await got(t, lines, seq(0, 3), 'the file once it is one');
    assert.ok(recovered >= 1, 'onRecovered called');
  });
});

describe('tail bounds', () => {
  it('cuts a partial line held past maxLineBytes and goes on with the next line', async () => {
    const dir = await tempDir();
    const path = join(dir, 'a.log');
    await writeFile(path, '');
    let overlong = 0;
    const { t, lines } = await follow(path, { maxLineBytes: 1024, onOverlong: () => overlong++ });
    // Written without its newline first, so the tail must hold it: past 1 KiB it is cut.
    await appendFile(path, 'x'.repeat(5000));
    await eventually(async () => overlong === 1, 5000, 'the long line cut');
    await appendFile(path, 'more x\nafter\n');
    await got(t, lines, ['after'], 'the line after the long one');
    assert.equal(overlong, 1);
  });

  it('reads a burst far larger than its buffer in chunks, every line once, UTF-8 split across chunks intact', async () => {
    const dir = await tempDir();
    const path = join(dir, 'a.log');
    await writeFile(path, '');
    let n = 0;
    let bad = 0;
    const t = new Tail(path, {
      pollMs: 50,
      chunkBytes: 4096,
      onLines: (block) =>
        forEachLine(block, (l) => {
          if (l !== `ünïcödé ${n}`) bad++;
          n++;
        }),
    });
    tails.push(t);
    await t.start();
    const all = Array.from({ length: 200_000 }, (_, i) => `ünïcödé ${i}\n`).join('');
    await appendFile(path, all);
    await eventually(async () => n >= 200_000, 20_000, 'the burst');
    assert.equal(n, 200_000);
    assert.equal(bad, 0);
  });
});
