/**
 * `npm run bench:speculative`: speculative decoding with the trained reference model's MTP layer
 * (models/reference/glm45-kjv-tiny converted with --mtp, q80). Greedy continuations of held-out KJV
 * text through GenerationSession, with 0..4 drafts per pass: acceptance per draft position, tokens per
 * verification pass and decode tokens/s, (a) on one node and (b) on a root plus a `glm-engine worker`
 * reached through a TCP relay that adds a delay each way (scripts/delay-relay.ts), where round trips
 * dominate.
 *
 *   npm run bench:speculative [-- --drafts 0,1,2,3,4 --delays 0.5,2 --prompts 4 --gen-tokens 64 --repeat 3 --threads 1]
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { convert } from '../converter/convert.js';
import { GenerationSession, LoadedModel, median } from '../engine/index.js';
import { packageRoot } from '../engine/native.js';
import { startWorker, stopWorker } from '../engine/worker-process.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { startDelayRelay } from './delay-relay.js';

const { values } = parseArgs({
  options: {
    drafts: { type: 'string', default: '0,1,2,3,4' },
    delays: { type: 'string', default: '0.5,2' },
    prompts: { type: 'string', default: '4' },
    'gen-tokens': { type: 'string', default: '64' },
    threads: { type: 'string', default: '1' },
    repeat: { type: 'string', default: '3' },
  },
});
const drafts = values.drafts!.split(',').map(Number);
const delays = values.delays!.split(',').filter((d) => d !== '').map(Number);
const promptCount = Number(values.prompts);
const genTokens = Number(values['gen-tokens']);
const threads = Number(values.threads);
const repeat = Number(values.repeat);
if (drafts.some((d) => !Number.isSafeInteger(d) || d < 0) || !drafts.includes(0)) throw new Error('--drafts: non-negative counts including 0, such as 0,1,2,3,4');
if (delays.some((d) => !(d >= 0))) throw new Error('--delays: milliseconds each way, such as 0.5,2');

const trained = join(packageRoot(), 'models', 'reference', 'glm45-kjv-tiny');
const work = await mkdtemp(join(tmpdir(), 'glm-dllama-bench-speculative-'));

interface Row {
  draft: number;
  tps: number;
  tokensPerPass: number;
  acceptance: number;
  acceptanceAt: number[];
}

/**
 * Each prompt `repeat` times at every draft count, interleaved (prompt, then each draft count in turn),
 * so that the drift of a shared machine hits all counts alike; decode speed is the median over the runs.
 */
async function measure(model: LoadedModel, prompts: number[][]): Promise<Row[]> {
  const seconds = new Map<number, number[]>(drafts.map((d) => [d, []]));
  const totals = new Map(drafts.map((d) => [d, { generated: 0, passes: 0, drafted: new Array<number>(d).fill(0), accepted: new Array<number>(d).fill(0) }]));
  for (let r = 0; r < repeat; r++) {
    for (const prompt of prompts) {
      let reference: number[] | undefined;
      for (const draft of drafts) {
        const run = new GenerationSession(model).generate(prompt, { temperature: 0, maxTokens: genTokens, draft });
        const ids: number[] = [];
        let step = await run.next();
        for (; !step.done; step = await run.next()) ids.push(step.value);
        reference ??= ids;
        if (ids.join() !== reference.join()) throw new Error(`--draft ${draft} changed the greedy output`);
        const s = step.value;
        const t = totals.get(draft)!;
        t.generated += s.generatedTokens - 1; // the first comes from the prompt's pass
        t.passes += s.decodePasses;
        s.draftedAt.forEach((n, i) => (t.drafted[i]! += n));
        s.acceptedAt.forEach((n, i) => (t.accepted[i]! += n));
        seconds.get(draft)!.push(s.decodeSeconds / (s.generatedTokens - 1));
      }
    }
  }
  return drafts.map((draft) => {
    const t = totals.get(draft)!;
    const drafted = t.drafted.reduce((a, b) => a + b, 0);
    return {
      draft,
      tps: 1 / median(seconds.get(draft)!),
      tokensPerPass: t.generated / t.passes,
      acceptance: drafted ? t.accepted.reduce((a, b) => a + b, 0) / drafted : 0,
      acceptanceAt: t.accepted.map((a, i) => a / t.drafted[i]!),
    };
  });
}

function print(title: string, rows: Row[]): void {
  const base = rows.find((r) => r.draft === 0)!.tps;
  console.log(`\n${title}`);
  console.log('| draft | decode tok/s | vs draft 0 | tokens per pass | acceptance | by draft position |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const at = r.acceptanceAt.map((a) => `${(100 * a).toFixed(0)}%`).join(' / ');
    console.log(`| ${r.draft} | ${r.tps.toFixed(1)} | ${(r.tps / base).toFixed(2)}x | ${r.tokensPerPass.toFixed(2)} | ${r.draft ? `${(100 * r.acceptance).toFixed(1)}%` : '-'} | ${at || '-'} |`);
  }
}

try {
  const model = join(work, 'kjv.q80.m');
  await convert({ modelDir: trained, outFile: model, weights: 'q80', mtp: true });
  const { tokenizer } = await loadTokenizer(join(work, 'kjv.q80.t'));
  // Prompts: the opening of successive held-out chapters (about 48 tokens each).
  const chapters = (await readFile(join(trained, 'heldout-excerpt.txt'), 'utf8')).split(/\n\n(?=\S+ \d+\n)/);
  const prompts = chapters.slice(0, promptCount).map((c) => tokenizer.encodeIds(c).slice(0, 48));
  if (prompts.length < promptCount) throw new Error(`the held-out excerpt has only ${prompts.length} chapters`);
  const draftMax = Math.max(...drafts);
  console.log(`trained reference model (q80, with its MTP layer), ${prompts.length} prompts x ${genTokens} greedy tokens x ${repeat} runs, ${threads} thread(s) per node; decode tok/s is the median over runs`);

  const local = new LoadedModel(model, { threads, contextLength: 256, draft: draftMax });
  print('(a) one node', await measure(local, prompts));
  local.close();

  const worker = await startWorker(threads === 1 ? [] : ['--threads', String(threads)]);
  try {
    for (const delay of [0, ...delays]) {
      const relay = delay > 0 ? await startDelayRelay(worker.address, delay) : undefined;
      try {
        const root = new LoadedModel(model, { threads, contextLength: 256, draft: draftMax, workers: [relay?.address ?? worker.address] });
        print(`(b) root + worker${delay > 0 ? `, ${delay} ms added each way` : ', loopback'}`, await measure(root, prompts));
        root.close();
      } finally {
        await relay?.close();
      }
    }
  } finally {
    stopWorker(worker);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
