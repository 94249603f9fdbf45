/**
 * The main job on the embedded default, as a model repository's workflows run it: the shipped trained
 * GLM-4.5-layout checkpoint (pipeline/reference-model.ts) goes through the bundled actions exactly as GitHub's
 * runner would run them, measured on its held-out text. First the
 * default branch's run (convert-glm, quantize, verify-perplexity, benchmark) saves its results as the
 * baselines; then a pull request's run does the same, compares with them, publishes to a local S3 server
 * started here (publish-to-spaces), and the report step prints the pull-request comment it would post.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GenerationSession, LoadedModel } from '../engine/index.js';
import { loadTokenizer } from '../tokenizer/load.js';
import { REFERENCE_EXCERPT, REFERENCE_MODEL_DIR, REFERENCE_NAME } from './reference-model.js';
import { startLocalS3, type LocalS3 } from './local-s3.js';
import { runAction, type ActionRun, type RunContext } from './local-runner.js';

export interface PipelineDemoResult {
  workDir: string;
  kept: boolean;
  steps: { name: string; run: string; outputs: Record<string, string> }[];
  /** The Markdown the report step would post on the pull request. */
  report: string;
  /** Object URLs of the published files. */
  published: string[];
  /** A greedy continuation of SAMPLE_PROMPT by the published q40 model. */
  sample: string;
}

export const SAMPLE_PROMPT = 'And it came to pass';

async function greedySample(model: string, tokenizerFile: string): Promise<string> {
  const { tokenizer, stopIds } = await loadTokenizer(tokenizerFile);
  const session = new GenerationSession(new LoadedModel(model, { threads: 1 }));
  const ids: number[] = [];
  for await (const id of session.generate(tokenizer.encodeIds(SAMPLE_PROMPT, { addSpecialTokens: false }), { maxTokens: 48, stopIds, temperature: 0 })) ids.push(id);
  return SAMPLE_PROMPT + tokenizer.decode(ids, { skipSpecialTokens: true });
}

const BUCKET = 'glm-models';
const MODEL = REFERENCE_NAME;

export async function runPipelineDemo(options: { outDir?: string; log?: (line: string) => void } = {}): Promise<PipelineDemoResult> {
  const log = options.log ?? (() => {});
  const workDir = options.outDir ?? (await mkdtemp(join(tmpdir(), 'glm-dllama-demo-')));
  const steps: PipelineDemoResult['steps'] = [];
  let s3: LocalS3 | undefined;
  try {
    s3 = await startLocalS3({ directory: join(workDir, 's3'), buckets: [BUCKET] });
    log(`local S3 server at ${s3.endpoint}, bucket ${BUCKET}`);
    log(`checkpoint: ${MODEL} (GLM-4.5 layout, trained on the King James Bible) in ${REFERENCE_MODEL_DIR}`);
    const repository = { default_branch: 'main', full_name: 'local/models' };
    const runs: Record<'main' | 'pr', RunContext> = {
      main: { eventName: 'push', event: { repository }, env: { GITHUB_REF: 'refs/heads/main' } },
      pr: { eventName: 'pull_request', event: { pull_request: { number: 1, head: { repo: repository }, base: { ref: 'main' } }, repository }, env: { GITHUB_HEAD_REF: 'my-change', GITHUB_BASE_REF: 'main' } },
    };
    const step = async (run: 'main' | 'pr', name: string, inputs: Record<string, string>): Promise<ActionRun> => {
      const workspace = join(workDir, run);
      await mkdir(workspace, { recursive: true });
      log(`▶ ${run === 'main' ? 'default branch' : 'pull request'}: ${name}`);
      const result = await runAction(name, inputs, { ...runs[run], workspace, runnerTemp: workspace, onLine: (l) => log(`    ${l}`) });
      if (result.code !== 0) throw new Error(`the ${name} step failed (exit ${result.code})`);
      steps.push({ name, run, outputs: result.outputs });
      return result;
    };
    // Both runs keep baselines in one folder, as a self-hosted runner's persistent disk would.
    const gateJob = async (run: 'main' | 'pr') => {
      // The store's keys start with baselines/, so the work folder itself is the store.
      const reporting = { 'baseline-store': workDir, 'runner-label': 'local', comment: 'false' };
      const converted = await step(run, 'convert-glm', { model: REFERENCE_MODEL_DIR, weights: 'f32', 'out-dir': 'models' });
      const f32 = join(workDir, run, converted.outputs['model-path'] as string);
      const tokenizer = join(workDir, run, converted.outputs['tokenizer-path'] as string);
      const quantized = await step(run, 'quantize', { model: f32, weights: 'q40', ...reporting });
      const q40 = quantized.outputs['model-path'] as string;
      await step(run, 'verify-perplexity', { model: q40, tokenizer, text: REFERENCE_EXCERPT, reference: f32, 'max-ppl-increase': '5', 'max-kld': '0.05', ...reporting });
      // One thread and a generous allowance: the tiny model's runs take milliseconds, so on a busy
      // machine a scheduling hiccup is a large share of a run; the demo must not fail on noise.
      await step(run, 'benchmark', { model: q40, 'prompt-tokens': '64', 'gen-tokens': '64', threads: '1', repeat: '5', 'max-regression': '75', 'cost-per-hour': '0.10', ...reporting });
      return { q40, tokenizer, reporting };
    };
    await gateJob('main');
    const pr = await gateJob('pr');
    const published = await step('pr', 'publish-to-spaces', {
      files: [pr.q40, pr.tokenizer].join('\n'),
      'model-name': MODEL,
      quant: 'q40',
      bucket: BUCKET,
      endpoint: s3.endpoint,
      'access-key-id': s3.accessKeyId,
      'secret-access-key': s3.secretAccessKey,
      acl: 'public-read',
    });
    const report = await step('pr', 'report', pr.reporting);
    const sample = await greedySample(pr.q40, pr.tokenizer);
    return { workDir, kept: options.outDir !== undefined, steps, report: report.summary, published: (published.outputs.urls ?? '').split('\n'), sample };
  } finally {
    await s3?.close();
    if (options.outDir === undefined) await rm(workDir, { recursive: true, force: true });
  }
}
