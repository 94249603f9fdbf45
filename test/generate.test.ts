/** Generation on ids (cache reuse, stop ids, the padded vocabulary) and the text commands over it. */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { convert } from '../converter/convert.js';
import { GenerationSession, LoadedModel } from '../engine/index.js';
import { fitConversation } from '../cli/engine-commands.js';
import { loadTokenizer, type ChatMessage } from '../tokenizer/index.js';
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

it('chat goes on past a full context, leaving out the oldest turns', () => {
  // The default --max-tokens (256) fills the fixture's 256-token context on the first reply.
  const run = spawnSync(process.execPath, [join(process.cwd(), 'dist', 'cli', 'glm-dllama.js'), 'chat', '--model', model, '--temperature', '0', '--threads', '2'], {
    input: 'Hello\nHow are you?\nThird\n',
    encoding: 'utf8',
  });
  expect(run.status).toBe(0);
  expect(run.stderr.match(/finish: /g)).toHaveLength(3);
  expect(run.stderr).toMatch(/\[the context of 256 tokens is full: left out the 2 oldest messages\]/);
});

it('fitConversation drops the oldest pairs until a reply has room, and refuses a message too long alone', () => {
  const render = (messages: ChatMessage[]) => Array.from(messages.map((m) => m.content).join(''), () => 0);
  const turns: ChatMessage[] = [
    { role: 'user', content: 'a'.repeat(30) },
    { role: 'assistant', content: 'b'.repeat(30) },
    { role: 'user', content: 'c'.repeat(10) },
    { role: 'assistant', content: 'd'.repeat(10) },
  ];
  const next: ChatMessage = { role: 'user', content: 'e'.repeat(5) };
  expect(fitConversation(turns, next, 120, 20, render)).toMatchObject({ dropped: 0, turns: [...turns, next] }); // room for 100
  const fitted = fitConversation(turns, next, 60, 20, render); // room for 45 prompt tokens
  expect(fitted).toMatchObject({ dropped: 2, turns: [...turns.slice(2), next] });
  expect(fitted.ids).toHaveLength(25);
  expect(fitConversation(turns, { role: 'user', content: 'x'.repeat(50) }, 60, 20, render)).toEqual({ turns, dropped: 0 });
});

it('chat on a terminal echoes what is typed', () => {
  // A pseudo-terminal from Python's pty module: type a line once the prompt shows, read the screen.
  const script = [
    'import os, pty, sys, time',
    'pid, fd = pty.fork()',
    'if pid == 0:',
    '    os.execv(sys.argv[1], sys.argv[1:])',
    'out = b""',
    'def read_until(marker, seconds):',
    '    global out',
    '    end = time.time() + seconds',
    '    while marker not in out and time.time() < end:',
    '        try: out += os.read(fd, 4096)',
    '        except OSError: break',
    'read_until(b"> ", 60)',
    'os.write(fd, b"Hello there\\r")',
    'read_until(b"finish:", 60)',
    'os.kill(pid, 2)',
    'sys.stdout.write(out.decode("utf8", "replace"))',
  ].join('\n');
  const run = spawnSync('python3', ['-c', script, process.execPath, join(process.cwd(), 'dist', 'cli', 'glm-dllama.js'), 'chat', '--model', model, '--max-tokens', '4', '--threads', '2'], { encoding: 'utf8' });
  expect(run.status).toBe(0);
  expect(run.stdout.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')).toMatch(/> Hello there/);
});

it("perplexity defaults to the bundled text and to chunks of the model's context, saying so", () => {
  const p = cli('perplexity', '--model', model, '--json');
  expect(p.status).toBe(0);
  expect(JSON.parse(p.stdout).chunks[0].tokens).toBe(256);
  expect(p.stderr).toMatch(/^256 tokens per chunk, the context of .*m\.q40\.m \(--ctx to choose\)/);
  expect(cli('perplexity', '--model', model, '--ctx', '512').stderr).toMatch(/--ctx 512 is longer than .*m\.q40\.m's context of 256 tokens/);
  expect(cli('bench', '--model', model, '--threads', '999', '--repeat', '1', '--gen-tokens', '1', '--prompt-tokens', '4').stderr).toMatch(
    /warning: --threads 999 is more than the \d+ cores here/,
  );
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
