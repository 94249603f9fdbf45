/**
 * Progress for long work: a live bar (cli-progress) on a terminal; in CI logs and pipes, a plain line
 * every few seconds so logs stay readable.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, detail: string): void;
  stop(): void;
}

const MiB = 1024 * 1024;

/** What a progress counts: bytes (shown in MiB) or tokens. */
export type ProgressUnit = 'bytes' | 'tokens';
const UNITS: Readonly<Record<ProgressUnit, { name: string; scale: number; digits: number }>> = {
  bytes: { name: 'MiB', scale: MiB, digits: 1 },
  tokens: { name: 'tokens', scale: 1, digits: 0 },
};

export function byteProgress(label: string, totalBytes: number, stream: NodeJS.WriteStream = process.stderr, unit: ProgressUnit = 'bytes'): Progress {
  const u = UNITS[unit];
  const amount = (n: number): string => (n / u.scale).toFixed(u.digits);
  const rate = (done: number, seconds: number): string => (seconds > 0 ? `${amount(done / seconds)} ${u.name}/s` : '-');
  const started = performance.now();
  if (stream.isTTY && !process.env.CI) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {percentage}% | {doneMB}/{totalMB} ${u.name} | {rate} | ETA {eta_formatted} | {detail}`,
        stream,
        hideCursor: true,
        gracefulExit: false, // Ctrl-C is the command's to handle: it cancels the work, which stops the bar
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    const totalMB = amount(totalBytes);
    bar.start(totalBytes, 0, { doneMB: amount(0), totalMB, rate: '-', detail: '' });
    return {
      update(done, detail) {
        const seconds = (performance.now() - started) / 1000;
        bar.update(done, { doneMB: amount(done), totalMB, rate: rate(done, seconds), detail });
      },
      stop: () => bar.stop(),
    };
  }
  let lastPrint = started;
  let finished = false;
  return {
    update(done, detail) {
      const now = performance.now();
      // Every 5 s, and once at the end (later updates, e.g. the last files' checks, repeat nothing new).
      if (finished || (now - lastPrint < 5000 && done < totalBytes)) return;
      finished = done >= totalBytes;
      lastPrint = now;
      const seconds = (now - started) / 1000;
      const pct = totalBytes > 0 ? ((100 * done) / totalBytes).toFixed(1) : '100.0';
      const eta = done > 0 ? Math.round((seconds * (totalBytes - done)) / done) : 0;
      stream.write(`${label}: ${pct}% ${amount(done)}/${amount(totalBytes)} ${u.name}, ${rate(done, seconds)}, ETA ${eta}s${detail ? `, ${detail}` : ''}\n`);
    },
    stop() {},
  };
}

/**
 * A progress display created on the first update (when the total is known) and always stopped when
 * the work ends, so that a result or an error is never drawn over by the bar.
 */
export function lazyProgress(label: string, unit: ProgressUnit = 'bytes') {
  let progress: Progress | undefined;
  return {
    update(done: number, total: number, detail: string): void {
      progress ??= byteProgress(label, total, process.stderr, unit);
      progress.update(done, detail);
    },
    async around<T>(work: () => Promise<T>): Promise<T> {
      try {
        return await work();
      } finally {
        progress?.stop();
      }
    },
  };
}
