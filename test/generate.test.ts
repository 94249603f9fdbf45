/** Generation on ids (cache reuse, stop ids, the padded vocabulary) and the text commands over it. */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { convert } from '../converter/convert.js';
import { GenerationSession, LoadedModel } from '../engine/index.js';
import { loadTokenizer } from '../tokenizer/index.js';
import { cli, fixture, removeDir, tempDir } from './helpers.js';

let dir: string;
let model: string;
let f32: string;

beforeAll(async () => {
  dir = await tempDir();
  const checkpoint = await fixture(dir, { arch: 'glm4moe' });
  model = join(dir, 'm.q40.m');
  f32 = join(dir, 'm.f32.m');
  await convert({ modelDir: checkpoint, outFile: model, weights: 'q40' });
  await convert({ modelDir: checkpoint, outFile: f32, weights: 'f32', tokenizerFile: null });
  await writeFile(join(dir, 'text.txt'), 'The river town woke slowly. Before the sun climbed over the hills, the baker had lit the ovens. '.repeat(8));
});
afterAll(async () => removeDir(dir));

function greedyByHand(prompt: number[], steps: number, limit: number): number[] {
  const m = new LoadedModel(model, { threads: 2, contextLength: 128 });
  let logits = m.evaluate(prompt);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    let best = 0;
    for (let j = 1; j < limit; j++) if (logits[j]! > logits[best]!) best = j;
    out.push(best);
    logits = m.evaluate([best]);
  }
  return out;
}

async function collect(run: AsyncGenerator<number, unknown>): Promise<number[]> {
  const ids: number[] = [];
  for await (const id of run) ids.push(id);
  return ids;
}

it('greedy generation follows the argmax, reuses the cached prefix, and never draws a padding id', async () => {
  const prompt = [514, 516, 519, 72, 299, 394];
  const limit = 548; // the fixture tokenizer's ids; the model has 576 rows
  const session = new GenerationSession(new LoadedModel(model, { threads: 2, contextLength: 128 }));
  const first = await collect(session.generate(prompt, { temperature: 0, maxTokens: 8, vocabLimit: limit }));
  expect(first).toEqual(greedyByHand(prompt, 8, limit));
  expect(first.every((id) => id < limit)).toBe(true);

  // The next turn extends what the cache holds: only the new part is evaluated, and the result is that of a fresh run.
  const next = [...prompt, ...first.slice(0, 7), 520, 10];
  const run = session.generate(next, { temperature: 0, maxTokens: 5, vocabLimit: limit });
  const ids: number[] = [];
  let step = await run.next();
  for (; !step.done; step = await run.next()) ids.push(step.value);
  expect(step.value.reusedTokens).toBe(prompt.length + 7);
  expect(ids).toEqual(greedyByHand(next, 5, limit));

  const stopAt = ids[2]!;
  const fresh = new GenerationSession(new LoadedModel(model, { threads: 2, contextLength: 128 }));
  const stopped = await collect(fresh.generate(next, { temperature: 0, maxTokens: 5, vocabLimit: limit, stopIds: [stopAt] }));
  expect(stopped).toEqual(ids.slice(0, ids.indexOf(stopAt) + 1));
});

it('generate streams the decoded text of the greedy ids', async () => {
  const { tokenizer } = await loadTokenizer(join(dir, 'm.q40.t'));
  const prompt = 'The river';
  const r = cli('generate', '--model', model, '--prompt', prompt, '--temperature', '0', '--max-tokens', '10', '--threads', '2');
  expect(r.status).toBe(0);
  const ids = greedyByHand(tokenizer.encodeIds(prompt), 10, tokenizer.vocabSize);
  expect(r.stdout).toBe(`${tokenizer.decode(ids, { skipSpecialTokens: true })}\n`);
  expect(r.stderr).toMatch(/\[\d+ prompt tokens at [\d.]+ tok\/s, 10 generated at [\d.]+ tok\/s, finish: length\]/);
  expect(cli('generate', '--model', f32, '--prompt', 'x').stderr).toMatch(/m\.f32\.m: no tokenizer found beside it .*; pass --tokenizer FILE/);
});

it('chat keeps the conversation and reuses the cache across turns', () => {
  const run = spawnSync(process.execPath, [join(process.cwd(), 'dist', 'cli', 'glm-dllama.js'), 'chat', '--model', model, '--max-tokens', '6', '--seed', '5', '--threads', '2'], {
    input: 'Hello there\nTell me more\n',
    encoding: 'utf8',
  });
  expect(run.status).toBe(0);
  const stats = run.stderr.trim().split('\n');
  expect(stats).toHaveLength(2);
  expect(stats[1]).toMatch(/\(\d+ reused from the cache\)/);
});

it('perplexity and kld report over a text file', () => {
  const p = JSON.parse(cli('perplexity', '--model', model, '--text', join(dir, 'text.txt'), '--ctx', '64', '--json').stdout);
  expect(p.perplexity).toBeGreaterThan(1);
  expect(p.chunks.length).toBeGreaterThan(1);
  const k = JSON.parse(cli('kld', '--model', model, '--reference', f32, '--tokenizer', join(dir, 'm.q40.t'), '--text', join(dir, 'text.txt'), '--ctx', '64', '--json').stdout);
  expect(k.meanKld).toBeGreaterThan(0);
  expect(k.top1Agreement).toBeGreaterThan(0.5);
  expect(k.perplexity).toBeCloseTo(p.perplexity, 6);
});
