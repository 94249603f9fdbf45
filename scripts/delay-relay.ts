/**
 * A TCP relay for benchmarks that adds a fixed delay in each direction, since these machines' kernels
 * have no netem qdisc (tc can shape bandwidth, not add delay). Every chunk read from one side is
 * written to the other `delayMs` after it arrived, in order. It runs in a worker thread, so the
 * benchmark's own event loop does not skew it; the last part of each wait is a busy wait, because
 * Node's timers round to whole milliseconds.
 */
import { createConnection, createServer, type Socket } from 'node:net';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

export interface DelayRelay {
  /** host:port to connect to instead of the target. */
  address: string;
  close(): Promise<void>;
}

/** Starts a relay to `target` (host:port) adding `delayMs` each way. */
export function startDelayRelay(target: string, delayMs: number): Promise<DelayRelay> {
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { target, delayMs } });
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', (port: number) =>
      resolve({
        address: `127.0.0.1:${port}`,
        close: async () => {
          await worker.terminate();
        },
      }),
    );
  });
}

function relay(target: string, delayMs: number): void {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const delayNs = BigInt(Math.round(delayMs * 1e6));
  const pipe = (from: Socket, to: Socket) => {
    const queue: { due: bigint; data: Buffer }[] = [];
    let scheduled = false;
    const flush = () => {
      scheduled = false;
      for (;;) {
        const head = queue[0];
        if (!head) return;
        const left = head.due - process.hrtime.bigint();
        if (left > 1_500_000n) {
          // Sleep for the whole milliseconds, then come back for the rest.
          scheduled = true;
          setTimeout(flush, Number(left / 1_000_000n) - 1);
          return;
        }
        while (process.hrtime.bigint() < head.due);
        queue.shift();
        to.write(head.data);
      }
    };
    from.on('data', (data: Buffer) => {
      queue.push({ due: process.hrtime.bigint() + delayNs, data });
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    });
    from.on('close', () => to.destroy());
    from.on('error', () => to.destroy());
  };
  const server = createServer((client) => {
    client.setNoDelay(true);
    const upstream = createConnection({ host, port }, () => upstream.setNoDelay(true));
    pipe(client, upstream);
    pipe(upstream, client);
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    parentPort!.postMessage(typeof address === 'object' && address ? address.port : 0);
  });
}

if (!isMainThread && workerData && (workerData as { target?: string }).target) {
  const { target, delayMs } = workerData as { target: string; delayMs: number };
  relay(target, delayMs);
}
