/**
 * A rotation-safe file follower: `tail -F` for a long-running process, without a child
 * process. It hands over complete lines only, in blocks, each with the position just
 * after it, and survives what logrotate and web servers do to a log:
 *
 * - where it starts: at a file's end (`from: 'end'`, the default: old traffic is not
 *   replayed), at its start, or at a position a consumer saved (below); a file that does
 *   not exist yet, or appears again after it was deleted, is read from its start;
 * - rotation by rename (logrotate `create`, then `nginx -s reopen`): the old file stays
 *   open and is read to its end — the writer keeps appending to it until it reopens, so
 *   "its end" is when it has been quiet for `drainMs` — and only then is the new file
 *   read, from its start. One file at a time, in order, so one position says how far
 *   the reading got;
 * - copy-truncate: a file shorter than the position read is read again from 0. Lines
 *   the writer appends between logrotate's copy and its truncate, and not yet read, are
 *   in the copy only: they are lost (the window is one poll at most when inotify is
 *   off, usually milliseconds). A truncated file that regrows past the position before
 *   the tail looks again is not seen as truncated: the bytes up to the old position are
 *   skipped. Rotation by rename has no such window; prefer it;
 * - a partial last line is held (bytes, not text, so a multi-byte character split across
 *   reads survives) until its newline arrives; one longer than `maxLineBytes` is cut
 *   and reported through `onOverlong` rather than buffered without bound.
 *
 * Exactly once for a consumer with a store: each block comes with the position after it
 * ({ dev, ino, offset } and a fingerprint of the bytes before offset). The tail reads on
 * only when the consumer's handler has returned — or, when it returns a promise, when
 * that promise has resolved — so a consumer that commits lines and position in one
 * transaction and starts the next run with `from: <saved position>` sees every line once.
 * A handler that throws (or rejects) is reported through onError and the same lines are
 * handed over again on the next pass. Resuming, the saved position is found:
 * - on the file at the path (same dev and inode, the bytes before the offset unchanged):
 *   read on from the offset;
 * - renamed beside it (`access.log.1`, `access.log-20261206`: same dev and inode in the
 *   same directory): its remainder first, then any file rotated after it meanwhile
 *   (named after the log, not compressed, last written later), then the file at the path
 *   from its start;
 * - nowhere (deleted, compressed, moved to another directory), or the file truncated or
 *   rewritten: the file at the path from its start, and `onGap` says what was skipped.
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
import { watch, type FSWatcher, type Stats } from 'node:fs';
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';

/** Where reading resumes in a file: keep it with the lines it follows. */
export interface TailPosition {
  dev: number;
  ino: number;
  /** Bytes from the file's start to just after the last line handed over. */
  offset: number;
  /**
   * The (up to 32) bytes just before `offset`, base64. The same bytes found there on
   * resume mean the same file: not one truncated and rewritten, nor a new file on a
   * reused inode number.
   */
  before: string;
}

export interface TailOptions {
  /**
   * Called with one or more complete lines, each ending in "\n" (a held last line
   * flushed at a rotation gets one too), and the position after them. The next chunk is
   * read only after it returns, or after the promise it returns resolves: that is what
   * bounds memory, and what lets a consumer store lines and position together.
   */
  onLines(block: string, position: TailPosition): void | Promise<void>;
  /** A read, an open or the consumer failed; the tail keeps trying. */
  onError?(err: Error): void;
  /** All is well again after onError. */
  onRecovered?(): void;
  /** A line longer than maxLineBytes was cut: its first maxLineBytes were dropped. */
  onOverlong?(): void;
  /** Resuming from a position skipped lines (the saved file is gone, or was cut): why. */
  onGap?(why: string): void;
  /**
   * Where to begin: a file's end (default), its start, or a saved position (a file that
   * exists at start; a missing one is read from its start when it appears, whatever this
   * says).
   */
  from?: 'end' | 'start' | TailPosition;
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
  /**
   * A rotated-away file is read until it has not grown for this long (default 5000 ms);
   * the new file waits meanwhile.
   */
  drainMs?: number;
  /** How bytes become text (default utf8; latin1 is faster and enough for ASCII logs). */
  encoding?: 'utf8' | 'latin1';
}

interface OpenFile {
  fh: FileHandle;
  dev: number;
  ino: number;
  /** Bytes read. */
  position: number;
  /** Just after the last line the consumer acknowledged: where a retry starts. */
  acked: number;
  /** TailPosition.before for `acked`. */
  ackedBefore: string;
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
/** Rotated files logrotate compressed: bytes no line reader can use. */
const COMPRESSED = /\.(gz|bz2|xz|zst|lz4|lzma|z|zip)$/i;
/** Bytes kept in TailPosition.before. */
const FINGERPRINT_BYTES = 32;

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** The consumer's handler threw: not a file's fault, so never kept as one. */
class ConsumerError extends Error {
  readonly code = 'LOOKOUT_TAIL_CONSUMER_FAILED';
}

type Required2 = Required<Omit<TailOptions, 'onError' | 'onRecovered' | 'onOverlong' | 'onGap'>> &
  Pick<TailOptions, 'onError' | 'onRecovered' | 'onOverlong' | 'onGap'>;

export class Tail {
  readonly path: string;
  private readonly opts: Required2;
  private current: OpenFile | undefined;
  /**
   * Files rotated away, oldest first: the first is read until it is quiet, and nothing
   * after it (nor `current`) is read before it is done.
   */
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
  /** position() when stop() closed the files: what a consumer saves at shutdown. */
  private lastPosition: TailPosition | undefined;

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
   * Opens the file if it is there (at its end, its start, or the saved position) and
   * begins following it. Resolves once the first pass is done, so a test can write after.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const from = this.opts.from;
    try {
      if (typeof from === 'object') await this.resume(from);
      else {
        const st = await stat(this.path);
        await this.openCurrent(from === 'end' ? st.size : 0);
      }
    } catch (err) {
      if (errCode(err) !== 'ENOENT') this.report(err);
    }
    this.watchDirectory();
    this.timer = setInterval(() => this.wake(), this.opts.pollMs);
    this.timer.unref();
    this.wake();
    await this.pass;
  }

  /**
   * Stops following and closes every file, after the consumer's handler in progress has
   * returned; a held partial line is dropped (a resume reads it again).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
    await this.pass;
    this.lastPosition = this.position();
    const files = [...this.draining, this.current].filter((f) => f !== undefined);
    this.current = undefined;
    this.draining = [];
    await Promise.all(files.map((f) => f.fh.close().catch(() => undefined)));
  }

  /** Resolves when a pass that starts now has finished: everything written before is read. */
  async settled(): Promise<void> {
    this.wake();
    while (this.pass) await this.pass;
  }

  /**
   * How far the consumer has acknowledged, in the file being read (a rotated-away one
   * while it drains); undefined before any file was opened. After stop(), where it stopped.
   */
  position(): TailPosition | undefined {
    const f = this.draining[0] ?? this.current;
    if (!f) return this.lastPosition;
    return { dev: f.dev, ino: f.ino, offset: f.acked, before: f.ackedBefore };
  }

  /** Where the saved position is now: at the path, renamed beside it, or nowhere. */
  private async resume(p: TailPosition): Promise<void> {
    let st: Stats | undefined;
    try {
      st = await stat(this.path);
    } catch (err) {
      if (errCode(err) !== 'ENOENT') throw err;
    }
    if (st && st.dev === p.dev && st.ino === p.ino) {
      const fh = await open(this.path, 'r');
      const f = await this.fileAt(fh, p);
      if (f) this.current = f;
      return;
    }
    const siblings = await this.siblings();
    const saved = siblings.find((s) => s.st.dev === p.dev && s.st.ino === p.ino);
    const f = saved && (await this.fileAt(await open(saved.path, 'r'), p));
    if (saved && f) {
      f.lastGrowth = performance.now();
      this.draining.push(f);
      // Rotated after it while the consumer was stopped (two rotations in one stop): each
      // was written to after the one before it stopped being written, so the order of
      // their last writes is the order of the rotations. Older rotations were last
      // written before the saved file was.
      const name = basename(this.path);
      const later = siblings
        .filter(
          (s) =>
            s !== saved &&
            s.name.startsWith(name) &&
            !COMPRESSED.test(s.name) &&
            s.st.mtimeMs > saved.st.mtimeMs &&
            !(st && s.st.dev === st.dev && s.st.ino === st.ino),
        )
        .sort((x, y) => x.st.mtimeMs - y.st.mtimeMs);
      for (const s of later) {
        const fh = await open(s.path, 'r');
        const o = await fh.stat();
        if (o.dev !== s.st.dev || o.ino !== s.st.ino) {
          await fh.close();
          continue;
        }
        this.draining.push({
          fh,
          dev: o.dev,
          ino: o.ino,
          position: 0,
          acked: 0,
          ackedBefore: '',
          held: undefined,
          skipping: false,
          lastGrowth: performance.now(),
        });
      }
    } else {
      this.opts.onGap?.(
        `the file last read (inode ${p.ino}) is neither at ${this.path} nor renamed beside it; reading ${this.path} from its start`,
      );
    }
    if (st) await this.openCurrent(0);
  }

  /** The regular files beside the path (not it), with their stat. */
  private async siblings(): Promise<{ name: string; path: string; st: Stats }[]> {
    const dir = dirname(this.path);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if (errCode(err) === 'ENOENT') return [];
      throw err;
    }
    const out: { name: string; path: string; st: Stats }[] = [];
    for (const name of names) {
      const path = join(dir, name);
      if (path === this.path) continue;
      try {
        const st = await stat(path);
        if (st.isFile()) out.push({ name, path, st });
      } catch (err) {
        // Gone between readdir and stat: not a file to read.
        if (errCode(err) !== 'ENOENT') throw err;
      }
    }
    return out;
  }

  /**
   * The open file at the saved position if it is the saved file (same inode, the bytes
   * before the offset unchanged); at 0, with a gap reported, if it was truncated or
   * rewritten; closed and undefined if it is another inode after all (a race).
   */
  private async fileAt(fh: FileHandle, p: TailPosition): Promise<OpenFile | undefined> {
    const st = await fh.stat();
    if (st.dev !== p.dev || st.ino !== p.ino) {
      await fh.close();
      return undefined;
    }
    let offset = p.offset;
    const before = Buffer.from(p.before, 'base64');
    if (st.size < p.offset) offset = 0;
    else if (before.length > 0) {
      const seen = Buffer.alloc(before.length);
      await fh.read(seen, 0, before.length, p.offset - before.length);
      if (!seen.equals(before)) offset = 0;
    }
    if (offset !== p.offset) {
      this.opts.onGap?.(
        `the file at the saved position (inode ${p.ino}, byte ${p.offset}) was truncated or rewritten; reading it from its start`,
      );
    }
    return {
      fh,
      dev: st.dev,
      ino: st.ino,
      position: offset,
      acked: offset,
      ackedBefore: offset === p.offset ? p.before : '',
      held: undefined,
      skipping: false,
      lastGrowth: performance.now(),
    };
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
      while (this.draining.length > 0) {
        const old = this.draining[0]!;
        try {
          if (!(await this.drain(old))) break;
        } catch (err) {
          if (err instanceof ConsumerError) throw err;
          // A rotated-away file that cannot be read any more: give it up, say so.
          this.draining = this.draining.filter((d) => d !== old);
          await old.fh.close().catch(() => undefined);
          throw err;
        }
      }
      if (this.draining.length === 0) await this.readCurrent();
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
          await this.flushHeld(cur);
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
        await this.flushHeld(cur);
        cur.position = 0;
        cur.acked = 0;
        cur.ackedBefore = '';
        if (this.draining.length === 0) await this.readCurrent();
      }
      return;
    }
    // A different file under the name. Keep the old one open while the writer may still
    // append to it (until it reopens), and read the new one from its start once the old
    // one is done: every byte in it arrived after the rotation.
    if (cur) {
      this.current = undefined;
      if (cur.failed !== undefined) await cur.fh.close().catch(() => undefined);
      else {
        cur.lastGrowth = performance.now();
        this.draining.push(cur);
      }
    }
    await this.openCurrent(0);
    if (this.draining.length === 0) await this.readCurrent();
  }

  /**
   * Reads the current file to its end. A failure (EIO, a directory where the log was) is
   * kept on the file rather than thrown at once, so the pass still looks at the name: a
   * new file there replaces the broken one; the same file is read again next pass. The
   * descriptor stays open meanwhile, so its inode number cannot be reused and mistaken
   * for it. A consumer's failure is thrown: the file is fine.
   */
  private async readCurrent(): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    try {
      if (await this.readToEnd(cur)) cur.lastGrowth = performance.now();
      cur.failed = undefined;
    } catch (err) {
      if (err instanceof ConsumerError) throw err;
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
    const at = Math.min(position, st.size);
    this.current = {
      fh,
      dev: st.dev,
      ino: st.ino,
      position: at,
      acked: at,
      ackedBefore: at === 0 ? '' : await fingerprint(fh, at),
      held: undefined,
      skipping: false,
      lastGrowth: performance.now(),
    };
  }

  /**
   * Reads a rotated-away file to its end; closes it once it has been quiet long enough.
   * True when it is done.
   */
  private async drain(f: OpenFile): Promise<boolean> {
    const grew = await this.readToEnd(f);
    if (grew) f.lastGrowth = performance.now();
    else if (performance.now() - f.lastGrowth >= this.opts.drainMs) {
      await this.flushHeld(f);
      this.draining = this.draining.filter((d) => d !== f);
      await f.fh.close();
      return true;
    }
    return false;
  }

  /** Reads from the position to the end of the file, chunk by chunk; true when it read anything. */
  private async readToEnd(f: OpenFile): Promise<boolean> {
    let any = false;
    for (;;) {
      if (this.stopped) return any;
      const at = f.position;
      const { bytesRead } = await f.fh.read(this.buf, 0, this.buf.length, at);
      if (bytesRead === 0) return any;
      any = true;
      f.position += bytesRead;
      this.bytes += bytesRead;
      try {
        await this.consume(f, this.buf.subarray(0, bytesRead), at);
      } catch (err) {
        // Not acknowledged: read it again from the last line that was.
        f.position = f.acked;
        f.held = undefined;
        f.skipping = false;
        throw err;
      }
      // A turn for the event loop (a scrape, a timer) between chunks.
      if (bytesRead === this.buf.length) await yieldToLoop();
    }
  }

  /** Hands over the complete lines of a chunk read at file offset `at`; holds the rest. */
  private async consume(f: OpenFile, chunk: Buffer, at: number): Promise<void> {
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
    // Kept before the consumer runs: the chunk's buffer is only read again after it.
    const rest = last + 1 < chunk.length ? chunk.subarray(last + 1) : undefined;
    if (f.held !== undefined) {
      const firstNl = chunk.indexOf(NEWLINE, start);
      const head = Buffer.concat([f.held, chunk.subarray(start, firstNl + 1)]);
      f.held = undefined;
      await this.deliver(f, head, at + firstNl + 1);
      start = firstNl + 1;
    }
    if (last >= start) await this.deliver(f, chunk.subarray(start, last + 1), at + last + 1);
    if (rest !== undefined) this.hold(f, rest);
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
  private async flushHeld(f: OpenFile): Promise<void> {
    const held = f.held;
    f.held = undefined;
    f.skipping = false;
    if (held !== undefined && held.length > 0) {
      await this.deliver(f, held, f.position, '\n');
    }
  }

  /** Hands `bytes` (ending at file offset `end`) to the consumer; acknowledged when it returns. */
  private async deliver(f: OpenFile, bytes: Buffer, end: number, suffix = ''): Promise<void> {
    const position: TailPosition = {
      dev: f.dev,
      ino: f.ino,
      offset: end,
      before: bytes.toString('base64', Math.max(0, bytes.length - FINGERPRINT_BYTES)),
    };
    const text = bytes.toString(this.opts.encoding) + suffix;
    try {
      const done = this.opts.onLines(text, position);
      if (done !== undefined) await done;
    } catch (err) {
      throw new ConsumerError(`${this.path}: the consumer of its lines failed`, { cause: err });
    }
    f.acked = end;
    f.ackedBefore = position.before;
  }
}

/** TailPosition.before for `offset` in an open file. */
async function fingerprint(fh: FileHandle, offset: number): Promise<string> {
  const n = Math.min(offset, FINGERPRINT_BYTES);
  const b = Buffer.alloc(n);
  const { bytesRead } = await fh.read(b, 0, n, offset - n);
  return b.toString('base64', 0, bytesRead);
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
