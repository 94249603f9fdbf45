/**
 * The committed trained model (models/reference/glm45-kjv-tiny, made by scripts/train-reference/train.py):
 *  - the checkpoint keeps GLM-4.5's MTP layer at model.layers.{num_hidden_layers} (eh_proj, enorm, hnorm,
 *    shared_head.norm and a full MoE decoder block), and the model card records its next-next-token accuracy;
 *  - the project's tokenizer and Hugging Face `tokenizers` give identical ids on the held-out excerpt, as many
 *    as the training script counted;
 *  - converted at f32, the engine's perplexity over the excerpt equals the one the training script computed in
 *    PyTorch from the same bf16 weights (1e-3 relative);
 *  - the committed q80/q40 files are exactly what the converter makes now, and f16/q80/q40 give the perplexity
 *    recorded in engine-metrics.json by scripts/reference-model.ts (1e-3 relative);
 *  - llama.cpp (node-llama-cpp) on the f32 GGUF export gives the engine's log-probs within 1e-4;
 *  - the imatrix calibration text shares no chapter with the held-out excerpt, and an imatrix from it gives the
 *    q40 KL recorded in imatrix-metrics.json by scripts/imatrix-quality.ts, at most 0.8x round-to-nearest's.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer as Reference } from 'tokenizers';
import { convert } from '../converter/convert.js';
import { convertToGguf } from '../converter/gguf.js';
import { Checkpoint } from '../converter/safetensors.js';
import { LoadedModel, klDivergence, logSoftmax, perplexity } from '../engine/index.js';
import { REFERENCE_EXCERPT, REFERENCE_MODEL_DIR as DIR, REFERENCE_NAME, referenceExcerptIds } from '../pipeline/reference-model.js';
import { COMMITTED_TYPES, ENGINE_METRICS_FILE, type EngineMetrics } from '../scripts/reference-model.js';
import { CALIBRATION_FILE, IMATRIX_METRICS_FILE, type ImatrixMetrics } from '../scripts/imatrix-quality.js';
import { imatrixFromStats, writeImatrix } from '../converter/imatrix.js';
import { readModelFile } from '../converter/model-file.js';
import { collectImatrix } from '../engine/imatrix.js';
import { loadTokenizer } from '../tokenizer/load.js';
import { removeDir, tempDir } from './helpers.js';
import { finiteLogprobsMaxDiff, llamaCppLogprobs } from './llama-cpp.js';

interface TrainingMetrics {
  excerpt: { tokens: number; perplexity: number; ctx: number; mtp_top1_accuracy: number };
  held_out: { perplexity: number; mtp_top1_accuracy: number };
}

const readJson = async <T>(file: string): Promise<T> => JSON.parse(await readFile(join(DIR, file), 'utf8')) as T;
const relative = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);

let work: string;
let ids: number[];
let training: TrainingMetrics;
let recorded: EngineMetrics;
const models = new Map<string, string>();

beforeAll(async () => {
  work = await tempDir();
  ids = await referenceExcerptIds();
  training = await readJson<TrainingMetrics>('reference-metrics.json');
  recorded = await readJson<EngineMetrics>(ENGINE_METRICS_FILE);
  for (const weights of ['f32', 'f16', ...COMMITTED_TYPES] as const) {
    const outFile = join(work, `${REFERENCE_NAME}.${weights}.m`);
    await convert({ modelDir: DIR, outFile, weights, threads: 2 });
    models.set(weights, outFile);
  }
});
afterAll(async () => removeDir(work));

test('the checkpoint keeps the MTP layer under GLM-4.5 tensor names, and the card records its accuracy', async () => {
  const config = await readJson<Record<string, number>>('config.json');
  expect(config.num_nextn_predict_layers).toBe(1);
  const checkpoint = await Checkpoint.open(DIR);
  try {
    const mtp = `model.layers.${config.num_hidden_layers}.`;
    const h = config.hidden_size!;
    const shape = (name: string) => checkpoint.tensors.get(mtp + name)?.shape;
    expect(shape('eh_proj.weight')).toEqual([h, 2 * h]);
    for (const norm of ['enorm.weight', 'hnorm.weight', 'shared_head.norm.weight', 'input_layernorm.weight', 'post_attention_layernorm.weight']) expect(shape(norm)).toEqual([h]);
    expect(shape('mlp.gate.weight')).toEqual([config.n_routed_experts, h]);
    expect(checkpoint.tensors.get(`${mtp}mlp.gate.e_score_correction_bias`)?.dtype).toBe('F32');
    for (let e = 0; e < config.n_routed_experts!; e++) expect(shape(`mlp.experts.${e}.down_proj.weight`)).toEqual([h, config.moe_intermediate_size]);
    expect(shape('mlp.shared_experts.up_proj.weight')).toEqual([config.moe_intermediate_size, h]);
    expect(checkpoint.tensors.get('model.embed_tokens.weight')?.dtype).toBe('BF16');
  } finally {
    await checkpoint.close();
  }
  const card = await readFile(join(DIR, 'README.md'), 'utf8');
  expect(card).toContain(`${(100 * training.held_out.mtp_top1_accuracy).toFixed(1)}%`);
  expect(training.held_out.mtp_top1_accuracy).toBeGreaterThan(0);
});

test('tokenizers (Hugging Face) gives the same ids on the held-out excerpt, as many as the training script counted', async () => {
  const text = await readFile(REFERENCE_EXCERPT, 'utf8');
  const reference = await Reference.fromFile(join(DIR, 'tokenizer.json')).encode(text, null, { addSpecialTokens: false });
  expect(reference.getIds()).toEqual(ids);
  expect(ids.length).toBe(training.excerpt.tokens);
});

test('at f32 the engine gives the perplexity the training script recorded', () => {
  const model = new LoadedModel(models.get('f32')!, { threads: 2 });
  expect(model.contextLength).toBe(training.excerpt.ctx);
  const result = perplexity(model, ids, training.excerpt.ctx);
  expect(relative(result.perplexity, training.excerpt.perplexity)).toBeLessThan(1e-3);
  expect(relative(result.perplexity, recorded.engine.f32.perplexity)).toBeLessThan(1e-5);
});

test.each(['f16', ...COMMITTED_TYPES] as const)('%s: the perplexity recorded in engine-metrics.json', (weights) => {
  const result = perplexity(new LoadedModel(models.get(weights)!, { threads: 2 }), ids, recorded.ctx);
  expect(relative(result.perplexity, recorded.engine[weights].perplexity)).toBeLessThan(1e-3);
});

test.each(COMMITTED_TYPES)('the committed %s model and tokenizer are what the converter makes now', async (weights) => {
  const fresh = models.get(weights)!;
  const committed = join(DIR, `${REFERENCE_NAME}.${weights}`);
  expect((await readFile(`${committed}.m`)).equals(await readFile(fresh))).toBe(true);
  expect((await readFile(`${committed}.t`)).equals(await readFile(fresh.replace(/\.m$/, '.t')))).toBe(true);
});

test('llama.cpp gives the engine\'s log-probs at f32 within 1e-4', async () => {
  const gguf = join(work, `${REFERENCE_NAME}.f32.gguf`);
  await convertToGguf({ modelDir: DIR, outFile: gguf, weights: 'f32', threads: 2 });
  const tokens = ids.slice(0, 96);
  const model = new LoadedModel(models.get('f32')!, { threads: 2 });
  const logits = model.evaluate(tokens, true);
  const vocab = model.vocabSize;
  const ours = tokens.map((_, i) => Array.from(logSoftmax(logits.subarray(i * vocab, (i + 1) * vocab))));
  const theirs = await llamaCppLogprobs(gguf, tokens);
  const { maxDiff, compared } = finiteLogprobsMaxDiff(ours, theirs);
  expect(compared).toBeGreaterThan(tokens.length * vocab * 0.5);
  expect(maxDiff).toBeLessThan(1e-4);
});

test('an imatrix from the calibration text (no held-out chapter in it) gives the recorded q40 KL, at most 0.8x round-to-nearest', async () => {
  const headings = (text: string) => new Set(text.split('\n\n').filter((block) => /^[1-3]? ?[A-Z][a-z]+(?: of [A-Z][a-z]+)? \d+$/.test(block.trim())).map((b) => b.trim()));
  const calibrationText = await readFile(join(DIR, CALIBRATION_FILE), 'utf8');
  const calibrationChapters = headings(calibrationText);
  const heldOut = headings(await readFile(REFERENCE_EXCERPT, 'utf8'));
  expect(calibrationChapters.size).toBe(13);
  expect(heldOut.size).toBe(10);
  expect([...calibrationChapters].filter((c) => heldOut.has(c))).toEqual([]);
  const metrics = await readJson<ImatrixMetrics>(IMATRIX_METRICS_FILE);
  const f32 = new LoadedModel(models.get('f32')!, { threads: 2, device: 'cpu' });
  const { tokenizer } = await loadTokenizer(DIR);
  const run = await collectImatrix(f32, tokenizer.encodeIds(calibrationText, { addSpecialTokens: false }), { ctx: f32.contextLength });
  const imatrix = join(work, 'reference.imatrix.gguf');
  await writeImatrix(imatrix, imatrixFromStats((await readModelFile(models.get('f32')!)).header, run.stats, { datasets: [CALIBRATION_FILE], chunkCount: run.chunks, chunkSize: f32.contextLength }));
  f32.close();
  expect(run.tokens).toBe(metrics.calibrationTokens);
  const weighted = join(work, 'reference.imatrix.q40.m');
  await convert({ modelDir: DIR, outFile: weighted, weights: 'q40', imatrix, threads: 2, tokenizerFile: null });
  const reference = new LoadedModel(models.get('f32')!, { threads: 2, device: 'cpu' });
  const model = new LoadedModel(weighted, { threads: 2, device: 'cpu' });
  const r = klDivergence(model, reference, ids, metrics.ctx);
  model.close();
  reference.close();
  const recordedRow = (name: string) => metrics.engine.find((row) => row.name === name)!;
  expect(relative(r.meanKld, recordedRow('q40 + imatrix, output q40').meanKld)).toBeLessThan(1e-3);
  expect(r.meanKld).toBeLessThan(0.8 * recorded.engine.q40.meanKld);
  expect(relative(recordedRow('q40, output q40').meanKld, recorded.engine.q40.meanKld)).toBeLessThan(1e-3);
});
