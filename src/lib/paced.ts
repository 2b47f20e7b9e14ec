/**
 * Jobs done a few per turn of the event loop, first in first out: between batches the
 * loop polls for I/O, so a request that arrives meanwhile (a kept-alive scraper's) is
 * read and answered between them instead of behind all of them. The door answers timed-out
 * connections and hands new ones to the HTTP server this way, and the /metrics fast path
 * a flood's scrapes: each of those came in bursts that held the loop tens of
 * milliseconds in one go (bench/abuse.ts).
 *
 * With `gapMs`, a backlog's next batch waits that long instead of the next turn: the
 * queue then takes a bounded share of the loop however fast it is refilled, and the
 * loop sits idle in between, so a request that arrives is read at once rather than
 * behind the batch and the garbage it left.
 */
export class Paced {
  private readonly queue: (() => void)[] = [];
  private scheduled = false;

  constructor(
    private readonly perTurn: number,
    private readonly gapMs = 0,
  ) {}

  run(job: () => void): void {
    this.queue.push(job);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.drain);
  }

  private readonly drain = (): void => {
    for (const job of this.queue.splice(0, this.perTurn)) job();
    if (this.queue.length === 0) this.scheduled = false;
    else if (this.gapMs > 0) setTimeout(this.drain, this.gapMs);
    else setImmediate(this.drain);
  };
}
