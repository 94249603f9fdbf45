// llama.cpp reference run, in its own process (a malformed GGUF can abort the whole process in a
// GGML_ASSERT). Started by test/llama-cpp.ts as `node llama-cpp-child.mjs REQUEST.json`, with
// UV_THREADPOOL_SIZE=1. The request is { model, tokens, threads, out }. For every input position it takes
// llama.cpp's full next-token distribution (temperature 0: the greedy sampler keeps every candidate, so
// p is the float32 softmax of the raw logits) and writes log(p) as float64 little-endian, positions x
// vocab, to `out`; p that underflowed to 0 becomes -Infinity. The last stdout line is a JSON status.
import { readFile, writeFile } from 'node:fs/promises';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

const request = JSON.parse(await readFile(process.argv[2], 'utf8'));
const { model: modelPath, tokens, threads, out } = request;

const llama = await getLlama({
  gpu: false,
  build: 'never',
  logLevel: LlamaLogLevel.warn,
  logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message}\n`),
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const metadata = model.fileInfo.metadata;
const arch = metadata.general.architecture;
const vocab = metadata[arch]?.vocab_size ?? metadata.tokenizer?.ggml?.tokens?.length;
if (!Number.isInteger(vocab)) throw new Error(`${modelPath}: cannot tell the vocabulary size`);

// One spare cell: with the context exactly as long as the tokens, the last position's distribution came
// back different from the engine's and from a separate evaluation (by up to 0.5 in log-prob; every other
// position agreed within 3e-6), as if the context had been shifted to make room before it.
const contextSize = Math.max(32, tokens.length + 1);
const context = await model.createContext({
  contextSize,
  batchSize: contextSize,
  threads,
  flashAttention: false,
  experimentalKvCacheKeyType: 'F32',
  experimentalKvCacheValueType: 'F32',
});
const sequence = context.getSequence();
const results = await sequence.controlledEvaluate(
  tokens.map((token) => [token, { generateNext: { probabilities: true, options: { temperature: 0 } } }]),
);

const logprobs = new Float64Array(tokens.length * vocab).fill(-Infinity);
for (let i = 0; i < tokens.length; i++) {
  const probabilities = results[i]?.next?.probabilities;
  if (!probabilities) throw new Error(`no probabilities at position ${i}`);
  for (const [token, p] of probabilities) {
    if (!Number.isInteger(token) || token < 0 || token >= vocab) throw new Error(`token ${token} outside the vocabulary of ${vocab}`);
    logprobs[i * vocab + token] = Math.log(p);
  }
}
await writeFile(out, new Uint8Array(logprobs.buffer));
await context.dispose();
await model.dispose();
await llama.dispose();
process.stdout.write(`${JSON.stringify({ ok: true, arch, vocab, positions: tokens.length })}\n`);
