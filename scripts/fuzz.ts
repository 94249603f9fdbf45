/**
 * `npm run fuzz -- [TARGET...] [--seconds N | --runs N] [--seed S]`: runs the TypeScript fuzz targets
 * (all when none is named), and the libFuzzer harnesses named `native:<target>` (fuzz/native/<target>.cpp,
 * built by fuzz/native/build.sh into build/fuzz/; their crash inputs land in fuzz/findings/native-<target>-*) and prints, per target, the inputs tried, inputs per second and any finding, whose
 * shrunk input is saved under fuzz/findings/ (replay it from fuzz/regressions/ once fixed). Each target runs
 * in a child process watched for hangs: a parser that spins on a count it trusted stops the child's
 * heartbeat, and the input it was given is saved as the finding. Exits 1 when anything was found.
 */
import { fork, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { fuzz, type FuzzOptions, type FuzzReport } from '../fuzz/run.js';
import { FUZZ_TARGETS, fuzzTarget } from '../fuzz/targets.js';
import { packageRoot } from '../engine/native.js';

const FINDINGS = join(packageRoot(), 'fuzz', 'findings');
const HEARTBEAT_MS = 500;

interface Options {
  seconds?: number;
  runs?: number;
  seed?: number;
  hangSeconds: number;
  child?: boolean;
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

/** In the child: fuzz one target, writing each input where the parent finds it if the heartbeat stops. */
async function child(name: string, options: FuzzOptions): Promise<void> {
  const current = join(FINDINGS, `.current-${name}`);
  const work = mkdtempSync(join(tmpdir(), 'glm-dllama-fuzz-'));
  let runs = 0;
  const heartbeat = setInterval(() => process.send!({ runs }), HEARTBEAT_MS);
  const onInput = (bytes: Buffer) => {
    runs++;
    writeFileSync(current, bytes);
  };
  try {
    const report = await fuzz(fuzzTarget(name), work, { ...options, findingsDir: FINDINGS, onInput });
    process.send!({ report });
  } finally {
    clearInterval(heartbeat);
    rmSync(work, { recursive: true, force: true });
    rmSync(current, { force: true });
  }
}

/** In the parent: run one target's child and turn a stopped heartbeat into a hang finding. */
function watch(name: string, options: Options): Promise<FuzzReport> {
  const args = [name, '--child', '--hang-seconds', String(options.hangSeconds)];
  for (const key of ['seconds', 'runs', 'seed'] as const) if (options[key]) args.push(`--${key}`, String(options[key]));
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const proc = fork(process.argv[1]!, args, { stdio: 'inherit' });
    let report: FuzzReport | undefined;
    let runs = 0;
    let lastBeat = performance.now();
    const timer = setInterval(() => {
      if (performance.now() - lastBeat < options.hangSeconds * 1000) return;
      clearInterval(timer);
      proc.kill('SIGKILL');
      const file = join(FINDINGS, `${name}--hang-${Date.now()}.bin`);
      renameSync(join(FINDINGS, `.current-${name}`), file);
      const seconds = (performance.now() - started) / 1000;
      report = { target: name, runs, seconds, perSecond: runs / seconds, seed: options.seed!, finding: { error: `no progress for ${options.hangSeconds} s (a hang)`, file } };
    }, HEARTBEAT_MS);
    proc.on('message', (m: { runs?: number; report?: FuzzReport }) => {
      lastBeat = performance.now();
      if (m.runs !== undefined) runs = m.runs;
      if (m.report) report = m.report;
    });
    proc.on('exit', (code) => {
      clearInterval(timer);
      if (report) resolve(report);
      else reject(new Error(`fuzz target ${name} exited with code ${code} before reporting`));
    });
  });
}

const NATIVE_PREFIX = 'native:';

/** Runs one libFuzzer harness for the time (or runs) asked, on its committed corpus and dictionary. */
function native(name: string, options: Options): Promise<{ line: string; found: boolean }> {
  const target = name.slice(NATIVE_PREFIX.length);
  const root = packageRoot();
  const dict = join(root, 'fuzz', 'dict', `${target === 'model-loader' ? 'model' : target}.dict`);
  const work = mkdtempSync(join(tmpdir(), `glm-dllama-fuzz-${target}-`));
  const args = [work, join(root, 'fuzz', 'corpus', `native-${target}`), `-dict=${dict}`, '-max_len=65536', '-rss_limit_mb=2048', `-timeout=${options.hangSeconds}`,
    `-artifact_prefix=${join(FINDINGS, `native-${target}-`)}`, `-seed=${options.seed}`];
  args.push(options.runs ? `-runs=${options.runs}` : `-max_total_time=${options.seconds}`);
  return new Promise((resolve, reject) => {
    const proc = spawn(join(root, 'build', 'fuzz', target), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let last = '';
    let tail = '';
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      tail = (tail + chunk).slice(-20000);
      for (const l of chunk.split('\n')) if (/\bcov: \d+/.test(l)) last = l;
    });
    proc.on('error', (e) => reject(new Error(`${e.message}: build the harnesses first with fuzz/native/build.sh`)));
    proc.on('exit', (code) => {
      rmSync(work, { recursive: true, force: true });
      const field = (key: string) => new RegExp(`${key}: (\\S+)`).exec(last)?.[1] ?? '?';
      const runs = /^#(\d+)/.exec(last)?.[1] ?? '?';
      const stats = `${runs} inputs, ${field('exec/s')}/s, cov: ${field('cov')} edges, ft: ${field('ft')}, corpus ${field('corp')}`;
      if (code !== 0) process.stderr.write(tail);
      resolve({ line: `${name.padEnd(18)} ${stats}: ${code === 0 ? 'no finding' : `FINDING (exit ${code}; input saved under fuzz/findings/)`}`, found: code !== 0 });
    });
  });
}

const program = new Command('fuzz')
  .argument('[targets...]', `targets: ${FUZZ_TARGETS.map((t) => t.name).join(', ')} (default: all), or native:<target> for fuzz/native/<target>.cpp`)
  .option('--seconds <n>', 'time per target (default 60 when --runs is not given)', positive)
  .option('--runs <n>', 'inputs per target', positive)
  .option('--seed <n>', 'the random seed (default: from the clock; printed)', positive)
  .option('--hang-seconds <n>', 'an input that takes longer is a hang', positive, 10)
  .option('--child', 'internal: run one target inside the watched child')
  .action(async (names: string[], options: Options) => {
    mkdirSync(FINDINGS, { recursive: true });
    if (!options.seconds && !options.runs) options.seconds = 60;
    options.seed ??= 1 + (Date.now() % 2 ** 31);
    const fuzzOptions: FuzzOptions = { seconds: options.seconds, runs: options.runs, seed: options.seed, slowMs: options.hangSeconds * 1000 };
    if (options.child) return child(names[0]!, fuzzOptions);
    const targets = names.length ? names.map((n) => (n.startsWith(NATIVE_PREFIX) ? n : fuzzTarget(n).name)) : FUZZ_TARGETS.map((t) => t.name);
    let found = 0;
    for (const name of targets) {
      if (name.startsWith(NATIVE_PREFIX)) {
        const r = await native(name, options);
        if (r.found) found++;
        console.log(r.line);
        continue;
      }
      const r = await watch(name, options);
      if (r.finding) found++;
      const outcome = r.finding ? `FINDING: ${r.finding.error} (input: ${r.finding.file})` : 'no finding';
      console.log(`${name.padEnd(18)} ${String(r.runs).padStart(8)} inputs in ${r.seconds.toFixed(1)} s (${r.perSecond.toFixed(0)}/s), seed ${r.seed}: ${outcome}`);
    }
    if (found) process.exitCode = 1;
  });

await program.parseAsync();
