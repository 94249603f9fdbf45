/**
 * `npm run fuzz -- [TARGET...] [--seconds N | --runs N] [--seed S]`: runs the TypeScript fuzz targets
 * (all when none is named) and prints, per target, the inputs tried, inputs per second and any finding, whose
 * shrunk input is saved under fuzz/findings/ (replay it from fuzz/regressions/ once fixed). Each target runs
 * in a child process watched for hangs: a parser that spins on a count it trusted stops the child's
 * heartbeat, and the input it was given is saved as the finding. Exits 1 when anything was found.
 */
import { fork } from 'node:child_process';
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

const program = new Command('fuzz')
  .argument('[targets...]', `targets: ${FUZZ_TARGETS.map((t) => t.name).join(', ')} (default: all)`)
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
    const targets = names.length ? names.map((n) => fuzzTarget(n).name) : FUZZ_TARGETS.map((t) => t.name);
    let found = 0;
    for (const name of targets) {
      const r = await watch(name, options);
      if (r.finding) found++;
      const outcome = r.finding ? `FINDING: ${r.finding.error} (input: ${r.finding.file})` : 'no finding';
      console.log(`${name.padEnd(18)} ${String(r.runs).padStart(8)} inputs in ${r.seconds.toFixed(1)} s (${r.perSecond.toFixed(0)}/s), seed ${r.seed}: ${outcome}`);
    }
    if (found) process.exitCode = 1;
  });

await program.parseAsync();
