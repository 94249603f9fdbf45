/**
 * The main job on the embedded default: a tiny GLM-4.5-style checkpoint generated on the spot, converted
 * to q40 and q80, each result read back, validated and compared with its source.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert, type ConvertResult } from './convert.js';
import type { WeightTypeName } from './dtypes.js';
import { writeFixture, type FixtureResult } from './fixture.js';
import { inspectModel, type InspectReport } from './inspect.js';
import { compareWithSource, type TensorError } from './verify.js';

export interface DemoStep {
  weights: WeightTypeName;
  conversion: ConvertResult;
  inspection: InspectReport;
  /** The worst tensor by error relative to its largest source value. */
  worst: TensorError;
  meanRmse: number;
}

export interface DemoReport {
  workDir: string;
  kept: boolean;
  fixture: FixtureResult;
  steps: DemoStep[];
}

export async function runDemo(options: { outDir?: string; weights?: WeightTypeName[] } = {}): Promise<DemoReport> {
  const workDir = options.outDir ?? (await mkdtemp(join(tmpdir(), 'glm-dllama-demo-')));
  try {
    const fixture = await writeFixture({ arch: 'glm4moe', outDir: join(workDir, 'checkpoint'), size: 'tiny', seed: 1 });
    const steps: DemoStep[] = [];
    for (const weights of options.weights ?? (['q40', 'q80'] as WeightTypeName[])) {
      const outFile = join(workDir, `glm4moe-tiny.${weights}.m`);
      const conversion = await convert({ modelDir: fixture.outDir, outFile, weights });
      const inspection = await inspectModel(outFile);
      const errors = await compareWithSource(fixture.outDir, outFile);
      const relative = (e: TensorError) => (e.maxAbsSource > 0 ? e.maxAbsError / e.maxAbsSource : 0);
      const worst = errors.reduce((a, b) => (relative(b) > relative(a) ? b : a));
      const meanRmse = errors.reduce((n, e) => n + e.rmse, 0) / errors.length;
      steps.push({ weights, conversion, inspection, worst, meanRmse });
    }
    return { workDir, kept: options.outDir !== undefined, fixture, steps };
  } finally {
    if (options.outDir === undefined) await rm(workDir, { recursive: true, force: true });
  }
}
