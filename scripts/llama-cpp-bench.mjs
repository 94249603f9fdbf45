// llama.cpp's speed on a GGUF, measured like glm-engine's bench: one prefill of N prompt tokens in one
// batch, then G greedy single-token decodes; median over repeats. Run by scripts/bench-engine.ts in its
// own process with UV_THREADPOOL_SIZE=1 (node-llama-cpp otherwise moves each decode to another libuv
// thread and decode speed falls by half or more). Flash attention off, f16 KV cache (llama.cpp's default).
// GPU: cpu (the default), or vulkan / cuda for node-llama-cpp's prebuilt GPU build with every layer on the GPU.
//   node llama-cpp-bench.mjs MODEL.gguf PROMPT_TOKENS GEN_TOKENS THREADS REPEAT [GPU]
// Prints one JSON line: { prefill_tps_all, decode_tps_all, device }, or { unavailable: reason } when that
// GPU build or a device for it is missing (llama.cpp's Vulkan backend lists no CPU devices such as lavapipe).
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

const [modelPath, promptArg, genArg, threadsArg, repeatArg, gpuArg = 'cpu'] = process.argv.slice(2);
const promptTokens = Number(promptArg), genTokens = Number(genArg), threads = Number(threadsArg), repeat = Number(repeatArg);
const gpu = gpuArg === 'cpu' ? false : gpuArg;
let llama;
try {
  llama = await getLlama({ gpu, build: 'never', logLevel: LlamaLogLevel.error });
} catch (e) {
  process.stdout.write(`${JSON.stringify({ unavailable: `no prebuilt ${gpuArg} build of llama.cpp works here: ${String(e?.message ?? e).split("\n")[0]}` })}\n`);
  process.exit(0);
}
const devices = gpu ? await llama.getGpuDeviceNames() : ['cpu'];
if (devices.length === 0) {
  process.stdout.write(`${JSON.stringify({ unavailable: `llama.cpp's ${gpuArg} build finds no GPU` })}\n`);
  process.exit(0);
}
const model = await llama.loadModel({ modelPath, gpuLayers: gpu ? 'max' : 0 });
const vocab = model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? 32000;
const context = await model.createContext({ contextSize: promptTokens + genTokens + 8, batchSize: promptTokens, threads, flashAttention: false });
const sequence = context.getSequence();

// The same deterministic prompt as glm-engine's bench.
const prompt = [];
let state = 12345;
for (let i = 0; i < promptTokens; i++) {
  state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
  prompt.push((state >>> 8) % vocab);
}

const prefill = [];
const decode = [];
for (let r = 0; r < repeat; r++) {
  await sequence.clearHistory();
  const start = performance.now();
  let firstAt = start;
  let generated = 0;
  // evaluate() runs the prompt as one batch, then yields one greedy token per decode step.
  for await (const _token of sequence.evaluate(prompt, { temperature: 0 })) {
    if (generated === 0) firstAt = performance.now();
    if (++generated > genTokens) break;
  }
  const end = performance.now();
  prefill.push(promptTokens / ((firstAt - start) / 1000));
  decode.push(genTokens / ((end - firstAt) / 1000));
}
await context.dispose();
await model.dispose();
await llama.dispose();
process.stdout.write(`${JSON.stringify({ prefill_tps_all: prefill, decode_tps_all: decode, device: devices.join(', ') })}\n`);
