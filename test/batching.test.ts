/**
 * Batched decoding: one evaluation step over several sequences, each in its own KV slot. A sequence's
 * logits must be bit for bit those it gets alone, whatever else is in the step and however its prompt
 * is chunked; the scheduler's replies must be those of one generation at a time.
 */
import { FIXTURE_ARCHS } from '../converter/fixture.js';
import { BatchScheduler, GenerationSession, LoadedModel } from '../engine/index.js';
import { fixtureModels, removeDir, tempDir } from './helpers.js';

let dir: string;
let models: Map<string, string>;
const prompts = [
  Array.from({ length: 13 }, (_, i) => (i * 37 + 5) % 500),
  Array.from({ length: 5 }, (_, i) => (i * 91 + 11) % 500),
  Array.from({ length: 21 }, (_, i) => (i * 53 + 7) % 500),
];

beforeAll(async () => {
  dir = await tempDir();
  models = await fixtureModels(dir, FIXTURE_ARCHS);
});
afterAll(async () => removeDir(dir));

/** Logits of every prompt token then of `decode` further ids, evaluated alone from an empty cache. */
function solo(path: string, prompt: readonly number[], decode: readonly number[]): Float32Array[] {
  const model = new LoadedModel(path, { threads: 2, contextLength: 64 });
  const vocab = model.vocabSize;
  const all = model.evaluate(prompt, true);
  const rows = prompt.map((_, t) => all.slice(t * vocab, (t + 1) * vocab));
  for (const id of decode) rows.push(model.evaluate([id]).slice());
  model.close();
  return rows;
}

const same = (a: Float32Array, b: Float32Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

describe.each(FIXTURE_ARCHS.flatMap((arch) => [`${arch}.f32`, `${arch}.q40`]))('%s', (name) => {
  it('gives each sequence of a batched step its solo logits, bit for bit', async () => {
    const path = models.get(name)!;
    const decode = [17, 230, 4, 99];
    const expected = prompts.map((p) => solo(path, p, decode));
    const model = new LoadedModel(path, { threads: 2, contextLength: 64, slots: 4 });
    const vocab = model.vocabSize;
    const got: Float32Array[][] = prompts.map(() => []);
    // Step 1: sequence 0's first chunk, sequence 1's whole prompt (slot 3, out of order), sequence 2's first token.
    let out = await model.evaluateSlots([
      { slot: 0, tokens: prompts[0]!.slice(0, 8), allLogits: true },
      { slot: 3, tokens: prompts[1]!, allLogits: true },
      { slot: 1, tokens: prompts[2]!.slice(0, 1), allLogits: true },
    ]);
    for (let t = 0; t < 8; t++) got[0]!.push(out[0]!.slice(t * vocab, (t + 1) * vocab));
    for (let t = 0; t < prompts[1]!.length; t++) got[1]!.push(out[1]!.slice(t * vocab, (t + 1) * vocab));
    got[2]!.push(out[2]!.slice());
    // Step 2: the rest of both prompts next to sequence 1's first decoded token.
    out = await model.evaluateSlots([
      { slot: 3, tokens: [decode[0]!] },
      { slot: 1, tokens: prompts[2]!.slice(1), allLogits: true },
      { slot: 0, tokens: prompts[0]!.slice(8), allLogits: true },
    ]);
    got[1]!.push(out[0]!.slice());
    for (let t = 0; t < prompts[2]!.length - 1; t++) got[2]!.push(out[1]!.slice(t * vocab, (t + 1) * vocab));
    for (let t = 0; t < prompts[0]!.length - 8; t++) got[0]!.push(out[2]!.slice(t * vocab, (t + 1) * vocab));
    // Then decoding steps, the sequences in changing order.
    for (let k = 0; k < decode.length; k++) {
      const entries = [
        { seq: 0, slot: 0 },
        { seq: 2, slot: 1 },
        ...(k + 1 < decode.length ? [{ seq: 1, slot: 3 }] : []),
      ];
      if (k % 2) entries.reverse();
      out = await model.evaluateSlots(entries.map((e) => ({ slot: e.slot, tokens: [decode[e.seq === 1 ? k + 1 : k]!] })));
      entries.forEach((e, i) => got[e.seq]!.push(out[i]!.slice()));
    }
    expect(model.slotPosition(0)).toBe(prompts[0]!.length + decode.length);
    expect(model.slotPosition(2)).toBe(0);
    for (let s = 0; s < prompts.length; s++) {
      expect(got[s]!.length).toBe(expected[s]!.length);
      const differing = got[s]!.map((row, t) => (same(row, expected[s]![t]!) ? -1 : t)).filter((t) => t >= 0);
      expect({ sequence: s, differing }).toEqual({ sequence: s, differing: [] });
    }
    model.close();
  });
});

it('refuses a repeated slot, a slot out of range and an overflow before evaluating anything', async () => {
  const model = new LoadedModel(models.get('glm4moe.q40')!, { threads: 2, contextLength: 16, slots: 2 });
  await expect(model.evaluateSlots([{ slot: 0, tokens: [1] }, { slot: 0, tokens: [2] }])).rejects.toThrow(/KV slot 0 appears twice/);
  await expect(model.evaluateSlots([{ slot: 2, tokens: [1] }])).rejects.toThrow(/no KV slot 2 \(the session has 2\)/);
  await expect(model.evaluateSlots([{ slot: 1, tokens: [1] }, { slot: 0, tokens: new Array(17).fill(1) }])).rejects.toThrow(/context overflow/);
  expect(model.slotPosition(1)).toBe(0);
  expect(() => model.rewindSlot(1, 1)).toThrow(/cannot rewind slot 1 to position 1/);
  expect(() => new LoadedModel(models.get('glm4moe.q40')!, { slots: 0 })).toThrow(/at least one KV slot/);
  model.close();
});

describe('BatchScheduler', () => {
  const options = { maxTokens: 12, temperature: 0 };
  const replies = async (scheduler: BatchScheduler | GenerationSession, prompt: readonly number[], o: object = options) => {
    const ids: number[] = [];
    for await (const id of scheduler.generate(prompt, o)) ids.push(id);
    return ids;
  };

  it('gives concurrent greedy and seeded generations the replies they get one at a time', async () => {
    const path = models.get('glm4moe.q40')!;
    const alone = new LoadedModel(path, { threads: 2, contextLength: 64 });
    const many = prompts.concat([prompts[0]!.slice(3), prompts[2]!.slice(0, 9)]);
    const sampled = { maxTokens: 12, temperature: 0.9, topP: 0.9, seed: 5 };
    const expected: number[][] = [];
    for (const [i, p] of many.entries()) {
      alone.reset();
      expected.push(await replies(new GenerationSession(alone), p, i % 2 ? sampled : options));
    }
    const model = new LoadedModel(path, { threads: 2, contextLength: 64, slots: 3 });
    const steps: number[] = [];
    const scheduler = new BatchScheduler(model, { prefillChunk: 7, onStep: (s) => steps.push(s.sequences) });
    // Five requests on three slots: two wait for a slot (and never fail).
    const got = await Promise.all(many.map((p, i) => replies(scheduler, p, i % 2 ? sampled : options)));
    expect(got).toEqual(expected);
    expect(Math.max(...steps)).toBe(3);
    expect(scheduler.busy).toBe(0);
  });

  it('leaves the others unchanged when a request joins mid-generation or its caller leaves', async () => {
    const path = models.get('glm4.q40')!;
    const alone = new LoadedModel(path, { threads: 2, contextLength: 64 });
    const expected: number[][] = [];
    for (const p of prompts) {
      alone.reset();
      expected.push(await replies(new GenerationSession(alone), p));
    }
    const model = new LoadedModel(path, { threads: 2, contextLength: 64, slots: 3 });
    const scheduler = new BatchScheduler(model, { prefillChunk: 4 });
    const first = replies(scheduler, prompts[0]!);
    // The second leaves after three tokens; the third joins once the first has started decoding.
    const leaving = (async () => {
      const ids: number[] = [];
      for await (const id of scheduler.generate(prompts[1]!, options)) {
        ids.push(id);
        if (ids.length === 3) break;
      }
      return ids;
    })();
    const gen = scheduler.generate(prompts[2]!, options);
    const late = (async () => {
      while (model.slotPosition(0) < prompts[0]!.length + 2) await new Promise((r) => setTimeout(r, 1));
      const ids: number[] = [];
      for await (const id of gen) ids.push(id);
      return ids;
    })();
    expect(await leaving).toEqual(expected[1]!.slice(0, 3));
    expect(scheduler.busy).toBeLessThan(3); // the slot of the caller that left is free
    expect(await first).toEqual(expected[0]);
    expect(await late).toEqual(expected[2]);
  });

  it('reuses a slot that holds the conversation so far', async () => {
    const model = new LoadedModel(models.get('glm4moe.q40')!, { threads: 2, contextLength: 64, slots: 2 });
    const scheduler = new BatchScheduler(model);
    const turn1 = scheduler.generate(prompts[2]!, options);
    const ids: number[] = [];
    let r = await turn1.next();
    while (!r.done) {
      ids.push(r.value);
      r = await turn1.next();
    }
    const next = [...prompts[2]!, ...ids, 3, 4];
    const turn2 = scheduler.generate(next, options);
    let s = await turn2.next();
    while (!s.done) s = await turn2.next();
    expect(s.value.reusedTokens).toBe(prompts[2]!.length + ids.length - 1);
  });
});
