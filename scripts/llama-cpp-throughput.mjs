// llama.cpp decoding several sequences in one context (node-llama-cpp batches the sequences' pending
// tokens into one decode per step), measured like glm-dllama bench --concurrency: that many greedy
// generations of deterministic prompts started at once. Run by scripts/bench-throughput.ts in its own
// process with UV_THREADPOOL_SIZE=1 (see llama-cpp-bench.mjs). Flash attention off, f16 KV cache.
//   node llama-cpp-throughput.mjs MODEL.gguf PROMPT_TOKENS GEN_TOKENS THREADS SEQUENCES
// Prints one JSON line: { started, streams } (performance.now() of the start and of each stream's tokens).
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

const [modelPath, promptArg, genArg, threadsArg, sequencesArg] = process.argv.slice(2);
const promptTokens = Number(promptArg), genTokens = Number(genArg), threads = Number(threadsArg), sequences = Number(sequencesArg);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const vocab = model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? 32000;
const context = await model.createContext({
  sequences,
  contextSize: sequences * (promptTokens + genTokens + 8),
  batchSize: Math.max(512, promptTokens),
  threads,
  flashAttention: false,
});

// The same deterministic prompts as benchConcurrency (engine/batch.ts).
let state = 12345;
const prompt = () =>
  Array.from({ length: promptTokens }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state >>> 8) % vocab;
  });
const seqs = Array.from({ length: sequences }, () => context.getSequence());
const prompts = seqs.map(() => prompt());
const started = performance.now();
const streams = await Promise.all(
  seqs.map(async (sequence, i) => {
    const times = [];
    for await (const _token of sequence.evaluate(prompts[i], { temperature: 0 })) {
      times.push(performance.now());
      if (times.length >= genTokens) break;
    }
    return times;
  }),
);
await context.dispose();
await model.dispose();
await llama.dispose();
process.stdout.write(`${JSON.stringify({ started, streams })}\n`);
