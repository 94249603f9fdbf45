/**
 * llama.cpp (the prebuilt CPU build inside node-llama-cpp@3.21.1) as an independent reference engine for
 * tests. Each call runs test/llama-cpp-child.mjs in a child process, because a malformed GGUF can abort
 * the process in a GGML_ASSERT instead of throwing; the child gets UV_THREADPOOL_SIZE=1.
 *
 * Settings are the exact ones of the reference notes: no GPU, no build, flash attention off, F32 KV cache
 * for keys and values, one batch holding every position, temperature 0 (so the probabilities are the
 * float32 softmax of the raw logits over the whole vocabulary).
 *
 * Underflow: llama.cpp hands back float32 probabilities, so a token whose logit is more than ~100 below
 * the maximum has p = 0 and its log-prob here is -Infinity. Comparisons must skip those entries (or
 * compare only tokens with p > 1e-30); `finiteLogprobsMaxDiff` does.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHILD = join(process.cwd(), 'test', 'llama-cpp-child.mjs');

export interface LlamaCppOptions {
  /** llama.cpp threads; default 2. */
  threads?: number;
  /** Kill the child after this many milliseconds; default 60000. */
  timeoutMs?: number;
}

/**
 * For each position i of `tokens`, llama.cpp's log-softmax over the full vocabulary of the token that
 * follows tokens[0..i]: result[i][t] = log p(t | tokens[0..i]), -Infinity where p underflowed to 0.
 * Rejects with llama.cpp's own log when the model does not load or the child dies.
 */
export async function llamaCppLogprobs(ggufPath: string, tokens: readonly number[], options: LlamaCppOptions = {}): Promise<number[][]> {
  if (tokens.length === 0) return [];
  const dir = await mkdtemp(join(tmpdir(), 'glm-dllama-llama-cpp-'));
  try {
    const out = join(dir, 'logprobs.f64');
    const request = join(dir, 'request.json');
    await writeFile(request, JSON.stringify({ model: ggufPath, tokens, threads: options.threads ?? 2, out }));
    const { code, signal, stdout, stderr } = await run(request, options.timeoutMs ?? 60_000);
    const status = lastJsonLine(stdout);
    if (code !== 0 || !status?.ok) {
      throw new Error(`llama.cpp failed on ${ggufPath} (exit ${code ?? signal}):\n${stderr.slice(-4000)}${stdout.slice(-1000)}`);
    }
    const bytes = await readFile(out);
    const values = new Float64Array(bytes.buffer, bytes.byteOffset, bytes.length / 8);
    const vocab = status.vocab as number;
    if (values.length !== vocab * tokens.length) throw new Error(`llama.cpp child wrote ${values.length} values, expected ${tokens.length} x ${vocab}`);
    return Array.from({ length: tokens.length }, (_, i) => Array.from(values.subarray(i * vocab, (i + 1) * vocab)));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function run(request: string, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, request], {
      env: { ...process.env, UV_THREADPOOL_SIZE: '1', NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function lastJsonLine(text: string): Record<string, unknown> | undefined {
  const lines = text.trim().split('\n');
  try {
    return JSON.parse(lines[lines.length - 1] ?? '') as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * Largest |a - b| over the entries where either log-prob is above `floor` (default log(1e-30)), with the
 * number of entries compared. Entries below the floor on both sides (where float32 probabilities may have
 * underflowed to 0) are skipped; one side above the floor and the other -Infinity counts as Infinity.
 */
export function finiteLogprobsMaxDiff(a: readonly (readonly number[])[], b: readonly (readonly number[])[], floor = Math.log(1e-30)): { maxDiff: number; compared: number; position: number; token: number } {
  if (a.length !== b.length) throw new Error(`${a.length} positions vs ${b.length}`);
  let maxDiff = 0;
  let compared = 0;
  let position = -1;
  let token = -1;
  a.forEach((row, i) => {
    const other = b[i]!;
    if (row.length !== other.length) throw new Error(`position ${i}: vocab ${row.length} vs ${other.length}`);
    row.forEach((x, t) => {
      const y = other[t]!;
      if (!(x > floor) && !(y > floor)) return;
      compared++;
      const d = Math.abs(x - y);
      if (d > maxDiff) {
        maxDiff = d;
        position = i;
        token = t;
      }
    });
  });
  return { maxDiff, compared, position, token };
}
