/**
 * `npm run bench:sampler`: milliseconds per call of topIds (the top-k selection a request's top_k drives
 * on the server's event loop) and of a whole Sampler.sample, at GLM-4.5's vocabulary, on random and on
 * ascending logits (the worst order for an insertion sort). Medians over repeats, after a warm-up.
 *
 *   npm run bench:sampler [-- --vocab 151552 --repeat 5]
 */
import { parseArgs } from 'node:util';
import { median, Sampler, topIds } from '../engine/index.js';

const { values } = parseArgs({ options: { vocab: { type: 'string', default: '151552' }, repeat: { type: 'string', default: '5' } } });
const vocab = Number(values.vocab);
const repeat = Number(values.repeat);

function timeMs(run: () => unknown): number {
  for (let i = 0; i < 3; i++) run(); // the JIT's first tiers are not what a server runs for hours
  const times: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const start = performance.now();
    run();
    times.push(performance.now() - start);
  }
  return median(times);
}

let state = 1;
const random = Float32Array.from({ length: vocab }, () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
const ascending = Float32Array.from({ length: vocab }, (_, i) => i / vocab);
console.log(`vocabulary ${vocab}, median of ${repeat}`);
for (const k of [40, 1000, 20_000, vocab]) {
  const sampler = new Sampler({ temperature: 0.8, topP: 0.95, topK: k, seed: 1 });
  console.log(
    `k ${String(k).padStart(7)}  topIds random ${timeMs(() => topIds(random, k)).toFixed(2)} ms, ascending ${timeMs(() => topIds(ascending, k)).toFixed(2)} ms;` +
      `  sample random ${timeMs(() => sampler.sample(random)).toFixed(2)} ms`,
  );
}
