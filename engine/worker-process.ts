/** `glm-engine worker` processes on this machine, for the benchmark and the tests of a cluster on loopback. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from './native.js';

/** The standalone engine executable (root and worker). */
export const ENGINE = join(packageRoot(), 'build', 'Release', 'glm-engine');

export interface WorkerProcess {
  child: ChildProcess;
  /** 127.0.0.1:port, as --workers takes it. */
  address: string;
  /** Every line the worker logged so far. */
  log: string[];
}

/** Starts a worker on a free loopback port (one thread unless args say otherwise) and resolves once it listens. */
export function startWorker(args: string[] = [], env: Record<string, string> = {}): Promise<WorkerProcess> {
  const child = spawn(ENGINE, ['worker', '--host', '127.0.0.1', '--port', '0', '--threads', '1', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start: ${log.join('\n')}`)), 10_000);
    let pending = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        log.push(line);
        const port = /listening on 127\.0\.0\.1:(\d+)/.exec(line)?.[1];
        if (port) {
          clearTimeout(timer);
          resolve({ child, address: `127.0.0.1:${port}`, log });
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code}: ${log.join('\n')}`));
    });
  });
}

export function stopWorker(w: WorkerProcess): void {
  if (w.child.exitCode === null) w.child.kill('SIGKILL');
}

/** Resolves when the worker has logged a line matching `pattern`. */
export async function waitForLog(w: WorkerProcess, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  const start = Date.now();
  for (;;) {
    const line = w.log.find((l) => pattern.test(l));
    if (line) return line;
    if (Date.now() - start > timeoutMs) throw new Error(`no log line matching ${pattern}: ${w.log.join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
