/**
 * The main job on the embedded default, as a model repository's pull-request workflow runs it: a tiny
 * GLM-4.5-layout checkpoint goes through the bundled actions (convert-glm, quantize, verify-perplexity,
 * benchmark, publish-to-spaces, report) exactly as the runner would run them, publishing to a local S3
 * server started here, and the pull-request report they would post is printed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFixture } from '../converter/fixture.js';
import { startLocalS3 } from './local-s3.js';
import { runAction, type ActionRun } from './local-runner.js';

export interface PipelineDemoResult {
  workDir: string;
  kept: boolean;
  steps: { name: string; outputs: Record<string, string> }[];
  /** The Markdown the report step would post on the pull request. */
  report: string;
}

const BUCKET = 'glm-models';

export async function runPipelineDemo(options: { outDir?: string; log?: (line: string) => void } = {}): Promise<PipelineDemoResult> {
  const log = options.log ?? (() => {});
  const workDir = options.outDir ?? (await mkdtemp(join(tmpdir(), 'glm-dllama-demo-')));
  const steps: PipelineDemoResult['steps'] = [];
  const s3 = await startLocalS3({ directory: join(workDir, 's3'), buckets: [BUCKET] });
  log(`local S3 server at ${s3.endpoint}, bucket ${BUCKET}`);
  try {
    const fixture = await writeFixture({ arch: 'glm4moe', outDir: join(workDir, 'checkpoint'), size: 'tiny', seed: 1 });
    log(`checkpoint: tiny glm4moe (GLM-4.5 layout) in ${fixture.outDir}`);
    const event = { pull_request: { number: 1, head: { repo: { full_name: 'local/models' } } }, repository: { default_branch: 'main' } };
    const step = async (name: string, inputs: Record<string, string>): Promise<ActionRun> => {
      log(`::group:: ${name}`);
      const run = await runAction(name, inputs, { event, runnerTemp: workDir, onLine: (l) => log(`  ${l}`) });
      if (run.code !== 0) throw new Error(`the ${name} step failed (exit ${run.code})`);
      steps.push({ name, outputs: run.outputs });
      return run;
    };
    const reporting = { 'results-dir': join(workDir, 'results'), 'baseline-store': join(workDir, 'baselines'), 'runner-label': 'local', comment: 'false' };
    const converted = await step('convert-glm', { model: fixture.outDir, weights: 'f32', 'out-dir': join(workDir, 'models') });
    const f32 = converted.outputs['model-path'] as string;
    const tokenizer = converted.outputs['tokenizer-path'] as string;
    const quantized = await step('quantize', { model: f32, weights: 'q40', ...reporting });
    const q40 = quantized.outputs['model-path'] as string;
    await step('verify-perplexity', { model: q40, tokenizer, reference: f32, 'max-ppl-increase': '5', 'max-kld': '0.05', ...reporting });
    await step('benchmark', { model: q40, 'prompt-tokens': '32', 'gen-tokens': '16', repeat: '3', 'cost-per-hour': '0.10', ...reporting });
    await step('publish-to-spaces', {
      files: [q40, tokenizer].join('\n'),
      'model-name': 'glm4moe-tiny',
      quant: 'q40',
      bucket: BUCKET,
      endpoint: s3.endpoint,
      'access-key-id': s3.accessKeyId,
      'secret-access-key': s3.secretAccessKey,
      acl: 'public-read',
      'results-dir': reporting['results-dir'],
    });
    const report = await step('report', reporting);
    return { workDir, kept: options.outDir !== undefined, steps, report: report.summary };
  } finally {
    await s3.close();
    if (options.outDir === undefined) await rm(workDir, { recursive: true, force: true });
  }
}
