/** Up to `capacity` generations at a time (the model's batch slots), with a bounded line of waiting requests. */

export class QueueFullError extends Error {
  constructor() {
    super('the server is busy: too many requests are waiting');
  }
}

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (e: unknown) => void;
}

export class GenerationQueue {
  private busy = 0;
  private readonly waiting: Waiter[] = [];

  /** `maxWaiting`: requests that may wait while `capacity` generate; one more is refused. */
  constructor(
    readonly maxWaiting: number,
    private readonly onChange: (waiting: number, running: number) => void = () => {},
    readonly capacity = 1,
  ) {}

  get depth(): number {
    return this.waiting.length;
  }
  /** Generations holding a place now. */
  get running(): number {
    return this.busy;
  }

  /**
   * Resolves with a release function once it is this request's turn. Throws QueueFullError at once when
   * the line is full; rejects with the signal's reason when it aborts while waiting (the place is freed).
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.busy < this.capacity) {
      this.busy++;
      this.changed();
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.maxWaiting) return Promise.reject(new QueueFullError());
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
        reject,
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        this.changed();
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
      this.changed();
    });
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next.resolve(this.releaser());
      else this.busy--;
      this.changed();
    };
  }

  private changed(): void {
    this.onChange(this.waiting.length, this.busy);
  }
}
