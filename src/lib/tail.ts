/**
 * A rotation-safe file follower: `tail -F` for a long-running process, without a child
 * process. It hands over complete lines only, in blocks, and survives what logrotate and
 * web servers do to a log:
 *
 * - an existing file is followed from its end (old traffic is not replayed); a file that
 *   does not exist yet, or appears again after it was deleted, is read from its start;
 * - rotation by rename (logrotate `create`, then `nginx -s reopen`): the old file stays
 *   open and is read to its end before the new one is read, and is kept open (read again
 *   on every pass) until it has been quiet for `drainMs`, because the writer keeps
 *   appending to it until it reopens;
 * - copy-truncate: a file shorter than the position read is read again from 0;
 * - a partial last line is held (bytes, not text, so a multi-byte character split across
 *   reads survives) until its newline arrives; one longer than `maxLineBytes` is cut
 *   and reported through `onOverlong` rather than buffered without bound.
 *
 * Reading is incremental: one buffer of `chunkBytes`, reused; the event loop gets a turn
 * between chunks, so a burst of a million lines neither grows memory nor starves /metrics.
 *
 * Wake-ups: fs.watch on the file's directory (inotify on Linux) makes appends visible at
 * once, and a poll every `pollMs` is the fallback that is always on — inotify watches can
 * run out, are lost when the directory is replaced, and say nothing about a rotated file
 * under its new name. A wake-up while a pass runs sets a flag for one more pass, so
 * passes never overlap and no wake-up is lost.
 */
import { watch, type FSWatcher } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';

export interface TailOptions {
  /**
   * Called with one or more complete lines, each ending in "\n" (a held last line
   * flushed at a rotation gets one too). Must be synchronous: the next chunk is read
   * only after it returns, which is what bounds memory.
   */
  onLines(block: string): void;
  /** A read or open failed (other than the file being absent); the tail keeps trying. */
  onError?(err: Error): void;
  /** All is well again after onError. */
  onRecovered?(): void;
  /** A line longer than maxLineBytes was cut: its first maxLineBytes were dropped. */
  onOverlong?(): void;
  /** Where to begin in a file that exists at start: its end (default) or its start. */
  from?: 'end' | 'start';
  /** Poll period in ms (default 1000); the fallback when fs.watch says nothing. */
  pollMs?: number;
  /** Use fs.watch as well as polling (default true). */
  watch?: boolean;
  /**
   * Bytes read per call (default 64 KiB). Keep it under V8's large-object size (128 KiB):
   * a larger block's text is allocated outside the young generation, page by page, and
   * decoding then costs 60 times as much (measured: 200 MB in 46 ms at 64 KiB, 2.9 s at
   * 256 KiB, under bin/lookout's heap flags).
   */
  chunkBytes?: number;
  /**
   * Longest partial line held while waiting for its newline (default 64 KiB); past it the
   * line is dropped up to its newline. A complete line inside one chunk is handed over
   * whole (it is at most chunkBytes).
   */
  maxLineBytes?: number;
  /** A rotated-away file is read until it has not grown for this long (default 5000 ms). */
  drainMs?: number;
  /** How bytes become text (default utf8; latin1 is faster and enough for ASCII logs). */
  encoding?: 'utf8' | 'latin1';
}

interface OpenFile {
  fh: FileHandle;
  dev: number;
  ino: number;
  position: number;
  /** Bytes after the last newline, waiting for theirs. */
  held: Buffer | undefined;
  /** Dropping bytes up to the next newline (the line was overlong). */
  skipping: boolean;
  /** performance.now() when it last grew; for rotated files being drained. */
  lastGrowth: number;
  /** Why its last read failed, until one succeeds. */
  failed?: unknown;
}

const NEWLINE = 0x0a;

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export class Tail {
  readonly path: string;
  private readonly opts: Required<Omit<TailOptions, 'onError' | 'onRecovered' | 'onOverlong'>> &
    Pick<TailOptions, 'onError' | 'onRecovered' | 'onOverlong'>;
  private current: OpenFile | undefined;
  /** Files rotated away that the writer may still append to. */
  private draining: OpenFile[] = [];
  private readonly buf: Buffer;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private started = false;
  private failing = false;
  /** Bytes read, from every file: for tests and benches. */
  bytes = 0;

  constructor(path: string, opts: TailOptions) {
    this.path = path;
    this.opts = {
      from: 'end',
      pollMs: 1000,
      watch: true,
      chunkBytes: 64 * 1024,
      maxLineBytes: 64 * 1024,
      drainMs: 5000,
      encoding: 'utf8',
      ...opts,
    };
    this.buf = Buffer.allocUnsafe(this.opts.chunkBytes);
  }

  /**
   * Opens the file if it is there (at its end, or start with `from: 'start'`) and begins
   * following it. Resolves once the first position is known, so a test can write after.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    try {
      const st = await stat(this.path);
      await this.openCurrent(this.opts.from === 'end' ? st.size : 0);
    } catch (err) {
      if (errCode(err) !== 'ENOENT') this.report(err);
    }
    this.watchDirectory();
    this.timer = setInterval(() => this.wake(), this.opts.pollMs);
    this.timer.unref();
    this.wake();
    await this.pass;
  }

  /** Stops following and closes every file; a held partial line is dropped. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
    await this.pass;
    const files = [this.current, ...this.draining].filter((f) => f !== undefined);
    this.current = undefined;
    this.draining = [];
    await Promise.all(files.map((f) => f.fh.close().catch(() => undefined)));
  }

  /** Resolves when a pass that starts now has finished: everything written before is read. */
  async settled(): Promise<void> {
    this.wake();
    while (this.pass) await this.pass;
  }

  private watchDirectory(): void {
    if (!this.opts.watch || this.stopped) return;
    const name = basename(this.path);
    try {
      // The directory, not the file: a watch on the file's inode would follow it to its
      // rotated name and never see the new file.
      this.watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file === null || file === name || this.draining.length > 0) this.wake();
      });
      this.watcher.on('error', () => {
        // The directory went away or the watch broke: polling carries on, and the next
        // pass tries to watch again.
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      // No directory yet, or out of inotify watches: polling alone until a pass retries.
      this.watcher = undefined;
    }
  }

  private wake(): void {
    if (this.stopped) return;
    if (this.pass) {
      this.again = true;
      return;
    }
    this.pass = (async () => {
      try {
        do {
          this.again = false;
          await this.runPass();
        } while (this.again && !this.stopped);
      } finally {
        this.pass = undefined;
      }
    })();
  }

  private async runPass(): Promise<void> {
    try {
      for (const old of [...this.draining]) {
        try {
          await this.drain(old);
        } catch (err) {
          // A rotated-away file that cannot be read any more: give it up, say so.
          this.draining = this.draining.filter((d) => d !== old);
          await old.fh.close().catch(() => undefined);
          throw err;
        }
      }
      await this.readCurrent();
      await this.checkRotation();
      if (this.current?.failed !== undefined) throw this.current.failed;
      if (this.opts.watch && this.watcher === undefined) this.watchDirectory();
      if (this.failing) {
        this.failing = false;
        this.opts.onRecovered?.();
      }
    } catch (err) {
      this.report(err);
    }
  }

  private report(err: unknown): void {
    this.failing = true;
    this.opts.onError?.(err instanceof Error ? err : new Error(String(err)));
  }

  /**
   * After the open file was read to its end: is the name still that file? A new file
   * under the name means a rotation by rename (or delete and create); a shorter file
   * under the same inode means copy-truncate.
   */
  private async checkRotation(): Promise<void> {
    let st;
    try {
      st = await stat(this.path);
    } catch (err) {
      if (errCode(err) !== 'ENOENT') throw err;
      // Renamed or deleted: keep reading the old fd, the writer may still use it. Once it
      // is deleted outright (no name left) and quiet, let it go, so its disk space is freed.
      const cur = this.current;
      if (cur && performance.now() - cur.lastGrowth >= this.opts.drainMs) {
        const { nlink } = await cur.fh.stat();
        if (nlink === 0) {
          this.flushHeld(cur);
          this.current = undefined;
          await cur.fh.close();
        }
      }
      return;
    }
    const cur = this.current;
    if (cur && st.dev === cur.dev && st.ino === cur.ino) {
      if (st.size < cur.position) {
        // Copy-truncate: what follows the held bytes is gone, so they are a line cut short.
        this.flushHeld(cur);
        cur.position = 0;
        await this.readCurrent();
      }
      return;
    }
    // A different file under the name. The old one was read to its end above; keep it
    // open while the writer may still append to it (until it reopens), and read the
    // new one from its start: every byte in it arrived after the rotation.
    if (cur) {
      this.current = undefined;
      if (cur.failed !== undefined) await cur.fh.close().catch(() => undefined);
      else {
        cur.lastGrowth = performance.now();
        this.draining.push(cur);
      }
    }
    await this.openCurrent(0);
    await this.readCurrent();
  }

  /**
   * Reads the current file to its end. A failure (EIO, a directory where the log was) is
   * kept on the file rather than thrown at once, so the pass still looks at the name: a
   * new file there replaces the broken one; the same file is read again next pass. The
   * descriptor stays open meanwhile, so its inode number cannot be reused and mistaken
   * for it.
   */
  private async readCurrent(): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    try {
      if (await this.readToEnd(cur)) cur.lastGrowth = performance.now();
      cur.failed = undefined;
    } catch (err) {
      cur.failed = err;
    }
  }

  private async openCurrent(position: number): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await open(this.path, 'r');
    } catch (err) {
      if (errCode(err) === 'ENOENT') return;
      throw err;
    }
    const st = await fh.stat();
    if (this.stopped) {
      await fh.close();
      return;
    }
    this.current = {
      fh,
      dev: st.dev,
      ino: st.ino,
      position: Math.min(position, st.size),
      held: undefined,
      skipping: false,
      lastGrowth: performance.now(),
    };
  }

  /** Reads a rotated-away file to its end; closes it once it has been quiet long enough. */
  private async drain(f: OpenFile): Promise<void> {
    const grew = await this.readToEnd(f);
    if (grew) f.lastGrowth = performance.now();
    else if (performance.now() - f.lastGrowth >= this.opts.drainMs) {
      this.flushHeld(f);
      this.draining = this.draining.filter((d) => d !== f);
      await f.fh.close();
    }
  }

  /** Reads from the position to the end of the file, chunk by chunk; true when it read anything. */
  private async readToEnd(f: OpenFile): Promise<boolean> {
    let any = false;
    for (;;) {
      if (this.stopped) return any;
      const { bytesRead } = await f.fh.read(this.buf, 0, this.buf.length, f.position);
      if (bytesRead === 0) return any;
      any = true;
      f.position += bytesRead;
      this.bytes += bytesRead;
      this.consume(f, this.buf.subarray(0, bytesRead));
      // A turn for the event loop (a scrape, a timer) between chunks.
      if (bytesRead === this.buf.length) await yieldToLoop();
    }
  }

  private consume(f: OpenFile, chunk: Buffer): void {
    let start = 0;
    if (f.skipping) {
      const nl = chunk.indexOf(NEWLINE);
      if (nl < 0) return;
      f.skipping = false;
      start = nl + 1;
    }
    const last = chunk.lastIndexOf(NEWLINE);
    if (last < start) {
      this.hold(f, chunk.subarray(start));
      return;
    }
    let text: string;
    if (f.held !== undefined) {
      const firstNl = chunk.indexOf(NEWLINE, start);
      const head = Buffer.concat([f.held, chunk.subarray(start, firstNl + 1)]);
      f.held = undefined;
      this.deliver(head.toString(this.opts.encoding));
      start = firstNl + 1;
    }
    if (last >= start) {
      text = chunk.toString(this.opts.encoding, start, last + 1);
      this.deliver(text);
    }
    if (last + 1 < chunk.length) this.hold(f, chunk.subarray(last + 1));
  }

  private hold(f: OpenFile, bytes: Buffer): void {
    const held = f.held === undefined ? Buffer.from(bytes) : Buffer.concat([f.held, bytes]);
    if (held.length > this.opts.maxLineBytes) {
      f.held = undefined;
      f.skipping = true;
      this.opts.onOverlong?.();
      return;
    }
    f.held = held;
  }

  /** A held partial line that will never get its newline (its file rotated or was cut). */
  private flushHeld(f: OpenFile): void {
    if (f.held !== undefined && f.held.length > 0) {
      this.deliver(f.held.toString(this.opts.encoding) + '\n');
    }
    f.held = undefined;
    f.skipping = false;
  }

  private deliver(block: string): void {
    this.opts.onLines(block);
  }
}

/**
 * Calls `each` for every line of a block from Tail (without its "\n"); a "\r" before the
 * newline is dropped too.
 */
export function forEachLine(block: string, each: (line: string) => void): void {
  let start = 0;
  for (let nl = block.indexOf('\n'); nl >= 0; nl = block.indexOf('\n', start)) {
    const end = nl > start && block.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
    each(block.slice(start, end));
    start = nl + 1;
  }
}
