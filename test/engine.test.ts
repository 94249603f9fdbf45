/**
 * The engine's own contracts: batched prefill equals token-by-token decoding, the cache rewinds, bad
 * models and bad ids are exceptions (never a crash), and glm-engine prints what the library computes.
 */
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LoadedModel, logprobs, logSoftmax, bench, perplexity } from '../engine/index.js';
import { cli, fixtureModels, removeDir, tempDir } from './helpers.js';

let dir: string;
let models: Map<string, string>;
const tokens = Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 500);

beforeAll(async () => {
  dir = await tempDir();
  models = await fixtureModels(dir, ['glm4moe', 'glm4', 'chatglm']);
});
afterAll(async () => removeDir(dir));

it.each(['glm4moe.f32', 'glm4moe.q40', 'glm4.f32', 'glm4.q40', 'chatglm.f32', 'chatglm.q40'])('%s: batched prefill equals one token at a time', (name) => {
  const model = new LoadedModel(models.get(name)!, { threads: 2, contextLength: 64 });
  const batched = model.evaluate(tokens, true);
  expect(model.position).toBe(tokens.length);
  expect(batched.every(Number.isFinite)).toBe(true);
  model.reset();
  const vocab = model.vocabSize;
  let worst = 0;
  for (let t = 0; t < tokens.length; t++) {
    const one = model.evaluate([tokens[t]!]);
    for (let i = 0; i < vocab; i++) worst = Math.max(worst, Math.abs(one[i]! - batched[t * vocab + i]!));
  }
  expect(worst).toBe(0); // same arithmetic per token on both paths
});

it('an f16 KV cache stays close to the f32 one, and decodes like it prefills', () => {
  const exact = new LoadedModel(models.get('glm4moe.f32')!, { threads: 2, contextLength: 64 });
  const half = new LoadedModel(models.get('glm4moe.f32')!, { threads: 2, contextLength: 64, kvCache: 'f16' });
  const a = exact.evaluate(tokens, true);
  const b = half.evaluate(tokens, true);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  expect(worst).toBeGreaterThan(0);
  expect(worst).toBeLessThan(0.01);
  half.reset();
  const vocab = half.vocabSize;
  const last = tokens.map((t) => half.evaluate([t])).at(-1)!;
  expect(Array.from(last)).toEqual(Array.from(b.subarray((tokens.length - 1) * vocab)));
});

it('evaluates off the event loop, one evaluation at a time', async () => {
  const model = new LoadedModel(models.get('glm4moe.q40')!, { threads: 2, contextLength: 64 });
  const pending = model.evaluateAsync(tokens, true);
  expect(() => model.evaluate([1])).toThrow(/busy with another evaluation/);
  const asynchronous = await pending;
  model.reset();
  expect(Array.from(asynchronous)).toEqual(Array.from(model.evaluate(tokens, true)));
  model.reset();
  await expect(model.evaluateAsync([9999])).rejects.toThrow(/token id 9999 at index 0 is outside the vocabulary/);
  expect(model.evaluate([1]).length).toBe(model.vocabSize); // usable again after a failure
});

it('rewinds to a shared prefix and gives the same logits as a fresh run', () => {
  const model = new LoadedModel(models.get('glm4moe.q40')!, { threads: 2, contextLength: 64 });
  const full = model.evaluate(tokens, true);
  model.rewind(10);
  const tail = model.evaluate(tokens.slice(10), true);
  const vocab = model.vocabSize;
  expect(Array.from(tail)).toEqual(Array.from(full.subarray(10 * vocab)));
});

it('turns bad ids, overflows and bad files into exceptions', async () => {
  const model = new LoadedModel(models.get('glm4.f32')!, { threads: 1, contextLength: 8 });
  expect(() => model.evaluate([1, 576])).toThrow(/token id 576 at index 1 is outside the vocabulary \(0\.\.575\)/);
  expect(() => model.evaluate(Array(9).fill(1))).toThrow(/context overflow: 9 tokens exceed the context of 8/);
  const bytes = await readFile(models.get('glm4.f32')!);
  const cut = join(dir, 'cut.m');
  await writeFile(cut, bytes.subarray(0, bytes.length - 100));
  expect(() => new LoadedModel(cut)).toThrow(/cut\.m: the header describes \d+ bytes but the file has \d+; it is truncated/);
  expect(() => new LoadedModel(join(dir, 'missing.m'))).toThrow(/missing\.m: cannot open/);
  await writeFile(join(dir, 'junk.m'), 'not a model at all');
  expect(() => new LoadedModel(join(dir, 'junk.m'))).toThrow(/junk\.m: bad magic/);
  await writeFile(join(dir, 'm.gguf'), 'GGUF\x03\0\0\0 and the rest of a llama.cpp file');
  expect(() => new LoadedModel(join(dir, 'm.gguf'))).toThrow(/m\.gguf: this is a GGUF file \(llama\.cpp's format\); the engine reads distributed-llama \.m files/);
});

it('log-probs are normalised and glm-engine prints the same as the CLI', () => {
  const model = new LoadedModel(models.get('glm4moe.q40')!, { threads: 2 });
  const result = logprobs(model, tokens.slice(0, 6));
  for (const p of result.positions) {
    const total = p.logprobs!.reduce((s, lp) => s + Math.exp(lp), 0);
    expect(Math.abs(total - 1)).toBeLessThan(1e-9);
  }
  const args = ['logprobs', '--model', models.get('glm4moe.q40')!, '--tokens', tokens.slice(0, 6).join(','), '--top', '5', '--threads', '2'];
  const fromCli = JSON.parse(cli(...args).stdout);
  const engine = spawnSync(join(process.cwd(), 'build', 'Release', 'glm-engine'), args, { encoding: 'utf8' });
  expect(engine.status).toBe(0);
  const fromEngine = JSON.parse(engine.stdout);
  expect(fromEngine.positions).toHaveLength(6);
  fromEngine.positions.forEach((p: { token: number; top: { id: number; logprob: number }[] }, i: number) => {
    expect(p.token).toBe(fromCli.positions[i].token);
    expect(p.top.map((e) => e.id)).toEqual(fromCli.positions[i].top.map((e: { id: number }) => e.id));
    p.top.forEach((e, j) => expect(Math.abs(e.logprob - fromCli.positions[i].top[j].logprob)).toBeLessThan(1e-5));
  });
  const bad = spawnSync(join(process.cwd(), 'build', 'Release', 'glm-engine'), ['logprobs', '--model', models.get('glm4moe.q40')!, '--tokens', '1,x'], { encoding: 'utf8' });
  expect(bad.status).toBe(2);
  expect(bad.stderr).toMatch(/--tokens must be comma-separated integers, got "x"/);
});

it('glm-engine generates greedily and measures perplexity like the library', async () => {
  const engine = join(process.cwd(), 'build', 'Release', 'glm-engine');
  const path = models.get('glm4.q40')!;
  const prompt = tokens.slice(0, 5);
  const run = spawnSync(engine, ['generate', '--model', path, '--tokens', prompt.join(','), '--max-tokens', '6', '--threads', '2'], { encoding: 'utf8' });
  expect(run.status).toBe(0);
  const model = new LoadedModel(path, { threads: 2, contextLength: 32 });
  let logits = model.evaluate(prompt);
  const greedy: number[] = [];
  for (let i = 0; i < 6; i++) {
    const next = logits.indexOf(Math.max(...logits));
    greedy.push(next);
    logits = model.evaluate([next]);
  }
  expect(JSON.parse(run.stdout).ids).toEqual(greedy);

  const idsFile = join(dir, 'ids.txt');
  await writeFile(idsFile, `${tokens.join(', ')}\n`);
  const p = spawnSync(engine, ['perplexity', '--model', path, '--tokens-file', idsFile, '--ctx', '10', '--threads', '2'], { encoding: 'utf8' });
  expect(p.status).toBe(0);
  const fromEngine = JSON.parse(p.stdout);
  const fromLibrary = perplexity(new LoadedModel(path, { threads: 2, contextLength: 10 }), tokens, 10);
  expect(fromEngine.chunks.map((c: { start: number }) => c.start)).toEqual([0, 10, 20]);
  expect(fromEngine.perplexity).toBeCloseTo(fromLibrary.perplexity, 6);
  await writeFile(idsFile, '1, 2, x');
  const bad = spawnSync(engine, ['perplexity', '--model', path, '--tokens-file', idsFile], { encoding: 'utf8' });
  expect(bad.status).toBe(1);
  expect(bad.stderr).toMatch(/ids\.txt: expected token ids separated by commas or spaces/);
});

it.each(['scalar', 'avx2'])('the %s kernels give the same log-probs as the default ones', (path) => {
  const engine = join(process.cwd(), 'build', 'Release', 'glm-engine');
  const run = (name: string, env: NodeJS.ProcessEnv) => {
    const r = spawnSync(engine, ['logprobs', '--model', models.get(name)!, '--tokens', tokens.join(','), '--threads', '2'], { encoding: 'utf8', env });
    expect(r.stderr).toBe('');
    return (JSON.parse(r.stdout) as { positions: { logprobs: number[] }[] }).positions.map((p) => p.logprobs);
  };
  // f32 weights: only the summation order differs. q40: the same, but a float difference may move one
  // activation across a q80 rounding boundary, so the bound is looser (a wrong kernel is off by > 0.1).
  for (const [name, bound] of [['glm4moe.f32', 1e-4], ['glm4moe.q40', 1e-2]] as const) {
    const best = run(name, process.env);
    const other = run(name, { ...process.env, GLM_ENGINE_KERNELS: path });
    let worst = 0;
    best.forEach((row, i) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - other[i]![j]!)))));
    expect([name, worst < bound]).toEqual([name, true]);
  }
});

it('bench reports every repeat and the medians', () => {
  const r = bench(models.get('glm4moe.q40')!, { promptTokens: 16, genTokens: 4, threads: 2, repeat: 3 });
  expect(r.prefill_tps_all).toHaveLength(3);
  expect(r.decode_tps_all).toHaveLength(3);
  expect(r.prefill_tps).toBeGreaterThan(0);
  expect(r.peak_rss_bytes).toBeGreaterThan(0);
  const json = JSON.parse(cli('bench', '--model', models.get('glm4.q40')!, '--prompt-tokens', '8', '--gen-tokens', '2', '--repeat', '2', '--json').stdout);
  expect(Object.keys(json)).toEqual(expect.arrayContaining(['prefill_tps', 'decode_tps', 'prefill_tps_all', 'decode_tps_all', 'peak_rss_bytes']));
  expect(Array.from(logSoftmax([0, Math.log(3)]), Math.exp)).toEqual([expect.closeTo(0.25, 12), expect.closeTo(0.75, 12)]);
});
