/** `glm-dllama demo`: the main job on the embedded default (the pipeline a model repository's pull request runs). */
import type { Command } from 'commander';
import { runPipelineDemo } from '../pipeline/demo.js';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'the main job on the embedded default: the shipped GLM-4.5-layout model trained on the King James Bible through the bundled actions (convert, quantize, verify, benchmark, publish to a local S3) and the pull-request report they would post',
    )
    .option('--out-dir <dir>', 'keep the checkpoint, models, results and the local bucket here (default: a temporary folder, removed afterwards)')
    .action(async (o: { outDir?: string }) => {
      const result = await runPipelineDemo({ outDir: o.outDir, log: (line) => console.log(line) });
      console.log(`\npublished:\n${result.published.map((u) => `  ${u}`).join('\n')}`);
      console.log('\nThe pull-request comment this run would post:\n');
      console.log(result.report);
      console.log(`The published q40 model, greedy:\n\n  ${result.sample.replace(/\n/g, '\n  ')}\n`);
      console.log(result.kept ? `files kept in ${result.workDir}` : 'temporary files removed (use --out-dir DIR to keep them)');
    });
}
