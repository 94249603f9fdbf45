/**
 * The fixture checkpoints' tokenizer: a small byte-level BPE in the real GLM file formats.
 *
 * The regular vocabulary has exactly 512 ids: the 256 single bytes (id = byte value) followed by 256
 * merges learned deterministically from the short English text below, pre-tokenized with the GLM
 * split regex. The GLM special tokens follow from id 512 in the order the real ones take from 151329.
 */
import type { FixtureArch } from './fixture.js';

/** Regular (mergeable) token count; the first special token gets this id. */
export const FIXTURE_REGULAR_TOKENS = 512;

/** The 14 special tokens of glm-4-9b-chat(-hf) and GLM-4-0414, in id order. */
export const GLM4_SPECIAL_TOKENS: readonly string[] = [
  '<|endoftext|>',
  '[MASK]',
  '[gMASK]',
  '[sMASK]',
  '<sop>',
  '<eop>',
  '<|system|>',
  '<|user|>',
  '<|assistant|>',
  '<|observation|>',
  '<|begin_of_image|>',
  '<|end_of_image|>',
  '<|begin_of_video|>',
  '<|end_of_video|>',
];

/** The 36 special tokens of the GLM-4.5 family, in id order. */
export const GLM45_SPECIAL_TOKENS: readonly string[] = [
  ...GLM4_SPECIAL_TOKENS,
  '<|begin_of_audio|>',
  '<|end_of_audio|>',
  '<|begin_of_transcription|>',
  '<|end_of_transcription|>',
  '<|code_prefix|>',
  '<|code_middle|>',
  '<|code_suffix|>',
  '<think>',
  '</think>',
  '<tool_call>',
  '</tool_call>',
  '<tool_response>',
  '</tool_response>',
  '<arg_key>',
  '</arg_key>',
  '<arg_value>',
  '</arg_value>',
  '/nothink',
  '<|begin_of_box|>',
  '<|end_of_box|>',
  '<|image|>',
  '<|video|>',
];

export function fixtureSpecialTokens(arch: FixtureArch): readonly string[] {
  return arch === 'glm4moe' ? GLM45_SPECIAL_TOKENS : GLM4_SPECIAL_TOKENS;
}

/** Id of a special token in the fixture tokenizer (throws for a name the arch does not have). */
export function fixtureSpecialId(arch: FixtureArch, token: string): number {
  const index = fixtureSpecialTokens(arch).indexOf(token);
  if (index < 0) throw new Error(`fixture tokenizer for ${arch} has no special token ${token}`);
  return FIXTURE_REGULAR_TOKENS + index;
}

/** The GLM-4 split regex exactly as tiktoken / tokenizer.json spell it (Oniguruma / fancy-regex syntax). */
export const GLM_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The same regex for JavaScript, which has no inline `(?i:…)` group in Node 20: the case folding is spelled out. */
export const GLM_SPLIT_REGEX_JS =
  /'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** Splits text into pre-tokens the way the GLM pre-tokenizer does. */
export function glmPreTokenize(text: string): string[] {
  return text.match(GLM_SPLIT_REGEX_JS) ?? [];
}

/** GPT-2's bytes-to-unicode table: printable Latin-1 bytes map to themselves, the rest to U+0100 upward. */
export function byteToUnicodeTable(): string[] {
  const table: string[] = new Array<string>(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : 256 + next++);
  }
  return table;
}

/** Training text for the merges (written for this project). */
const TRAINING_TEXT = `The river town woke slowly. Before the sun climbed over the hills, the baker had already lit
the ovens, and the smell of fresh bread drifted down the narrow streets toward the water. Fishermen
checked their nets, children ran to school, and the old clock on the station tower struck seven.

In the library, a student was reading about the history of the region. She learned that the first
settlers arrived in 1843, that the bridge was built in 1907, and that the great flood of 1952 changed
the shape of the valley forever. "It's strange," she said to her friend, "how one storm can rewrite
a whole map." Her friend laughed: "We'll write our own maps one day, won't we?"

Language models read text as a sequence of tokens. A tokenizer splits words into pieces that appear
often: common words become single tokens, while rare words are built from smaller parts. Numbers are
grouped in runs of up to three digits, so 2024 becomes 202 and 4, and 3.14159 becomes several pieces.
Spaces usually stay attached to the word that follows them, which keeps the vocabulary compact.

The café near the harbour served soup, tea and coffee. Its owner, a naïve but generous man, believed
that every traveller deserved a warm meal. When the weather turned cold, he opened the doors early
and kept them open late; people came from the other side of the river just to sit by his fire.

Testing a converter needs small, deterministic data: the same input must always give the same output,
every file must be written in the real format, and every number must be checked against a reference.
If the shapes are right and the values agree, we can trust the larger models too. If they don't,
the error message should say which file, which tensor and which field went wrong, and why.

Summer evenings in the town were long and bright. Musicians played in the square, the market stayed
open until ten, and the boats returned with their lights shining on the dark water. Nobody hurried;
there was always time for another story, another song, another walk along the quiet river bank.
`;

export interface FixtureBpe {
  /** Bytes of every regular token, indexed by id (0..511). */
  readonly tokenBytes: readonly Uint8Array[];
  /** Merges in rank order as pairs of token ids; merge r produces token 256 + r. */
  readonly merges: readonly (readonly [number, number])[];
}

let cachedBpe: FixtureBpe | undefined;

/** Learns the 256 merges (deterministically: most frequent pair, ties broken by the smaller id pair). */
export function fixtureBpe(): FixtureBpe {
  if (cachedBpe) return cachedBpe;
  const encoder = new TextEncoder();
  const wordCounts = new Map<string, number>();
  for (const piece of glmPreTokenize(TRAINING_TEXT)) wordCounts.set(piece, (wordCounts.get(piece) ?? 0) + 1);
  const words: { ids: number[]; count: number }[] = [];
  for (const [word, count] of wordCounts) words.push({ ids: [...encoder.encode(word)], count });

  const tokenBytes: Uint8Array[] = [];
  const known = new Set<string>();
  for (let b = 0; b < 256; b++) {
    tokenBytes.push(Uint8Array.of(b));
    known.add(String(b));
  }
  const merges: [number, number][] = [];
  const key = (bytes: Uint8Array): string => bytes.join(',');
  const banned = new Set<number>(); // pairs whose concatenation already exists as a token

  while (tokenBytes.length < FIXTURE_REGULAR_TOKENS) {
    const counts = new Map<number, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.ids.length; i++) {
        const pair = w.ids[i]! * 1024 + w.ids[i + 1]!;
        if (!banned.has(pair)) counts.set(pair, (counts.get(pair) ?? 0) + w.count);
      }
    }
    let best = -1;
    let bestCount = 0;
    for (const [pair, count] of counts) {
      if (count > bestCount || (count === bestCount && pair < best)) {
        best = pair;
        bestCount = count;
      }
    }
    if (best < 0) throw new Error('fixture tokenizer: training text too short for 256 merges');
    const a = Math.floor(best / 1024);
    const b = best % 1024;
    const bytes = new Uint8Array([...tokenBytes[a]!, ...tokenBytes[b]!]);
    if (known.has(key(bytes))) {
      banned.add(best);
      continue;
    }
    const id = tokenBytes.length;
    tokenBytes.push(bytes);
    known.add(key(bytes));
    merges.push([a, b]);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.ids.length; i++) {
        if (i + 1 < w.ids.length && w.ids[i] === a && w.ids[i + 1] === b) {
          out.push(id);
          i++;
        } else {
          out.push(w.ids[i]!);
        }
      }
      w.ids = out;
    }
  }
  cachedBpe = { tokenBytes, merges };
  return cachedBpe;
}

/** The byte-level string form of every regular token (GPT-2 bytes-to-unicode), indexed by id. */
export function fixtureTokenStrings(): string[] {
  const table = byteToUnicodeTable();
  return fixtureBpe().tokenBytes.map((bytes) => Array.from(bytes, (b) => table[b]!).join(''));
}

function addedToken(id: number, content: string): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** tokenizer.json in Hugging Face `tokenizers` format. */
export function fixtureTokenizerJson(arch: FixtureArch): Record<string, unknown> {
  const strings = fixtureTokenStrings();
  const { merges } = fixtureBpe();
  const vocab: Record<string, number> = {};
  strings.forEach((s, id) => {
    vocab[s] = id;
  });
  const specials = fixtureSpecialTokens(arch);
  const gmask = fixtureSpecialId(arch, '[gMASK]');
  const sop = fixtureSpecialId(arch, '<sop>');
  // glm-4-9b-chat-hf's tokenizer.json prepends [gMASK]<sop> (spec 4.2); the ChatGLM remote tokenizer does the
  // same in code. The 0414 / 4.5 files are modelled with the ByteLevel-only post-processor of HF's converter.
  const postProcessor =
    arch === 'glm' || arch === 'chatglm'
      ? {
          type: 'TemplateProcessing',
          single: [
            { SpecialToken: { id: '[gMASK]', type_id: 0 } },
            { SpecialToken: { id: '<sop>', type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
          ],
          pair: [
            { SpecialToken: { id: '[gMASK]', type_id: 0 } },
            { SpecialToken: { id: '<sop>', type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: {
            '[gMASK]': { id: '[gMASK]', ids: [gmask], tokens: ['[gMASK]'] },
            '<sop>': { id: '<sop>', ids: [sop], tokens: ['<sop>'] },
          },
        }
      : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((s, i) => addedToken(FIXTURE_REGULAR_TOKENS + i, s)),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: GLM_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => [strings[a]!, strings[b]!]),
    },
  };
}

/** GLM-4 style chat template: `[gMASK]<sop>`, `<|role|>\n{content}` per message, `<|assistant|>` to generate. */
const GLM4_CHAT_TEMPLATE =
  "[gMASK]<sop>{%- for message in messages -%}" +
  "{%- if message['role'] == 'tool' -%}{{ '<|observation|>' }}{%- else -%}{{ '<|' + message['role'] + '|>' }}{%- endif -%}" +
  "{%- if message['metadata'] is defined and message['metadata'] -%}{{ message['metadata'] }}{%- endif -%}" +
  "{{ '\\n' + (message['content'] or '') }}" +
  '{%- endfor -%}' +
  "{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- endif -%}";

/**
 * GLM-4.5 style chat template (written for the fixture, simplified): reasoning in `<think>…</think>` is kept only
 * for assistant turns after the last user message, `enable_thinking=false` appends `/nothink` to user turns and
 * opens the reply with an empty think block, tool results go in `<|observation|>` / `<tool_response>`.
 */
const GLM45_CHAT_TEMPLATE =
  '[gMASK]<sop>' +
  '{%- set ns = namespace(last_user=-1) -%}' +
  "{%- for m in messages -%}{%- if m['role'] == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}" +
  '{%- set nothink = enable_thinking is defined and not enable_thinking -%}' +
  '{%- for m in messages -%}' +
  "{%- if m['role'] == 'system' -%}{{ '<|system|>\\n' + (m['content'] or '') }}" +
  "{%- elif m['role'] == 'user' -%}{{ '<|user|>\\n' + (m['content'] or '') }}{%- if nothink -%}{{ '/nothink' }}{%- endif -%}" +
  "{%- elif m['role'] == 'assistant' -%}{{ '<|assistant|>' }}" +
  "{%- if loop.index0 > ns.last_user and m['reasoning_content'] is defined and m['reasoning_content'] -%}" +
  "{{ '\\n<think>' + m['reasoning_content'] + '</think>' }}" +
  "{%- else -%}{{ '\\n<think></think>' }}{%- endif -%}" +
  "{{ '\\n' + (m['content'] or '') }}" +
  "{%- elif m['role'] == 'tool' or m['role'] == 'observation' -%}" +
  "{{ '<|observation|>\\n<tool_response>\\n' + (m['content'] or '') + '\\n</tool_response>' }}" +
  '{%- endif -%}' +
  '{%- endfor -%}' +
  "{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- if nothink -%}{{ '\\n<think></think>' }}{%- endif -%}{%- endif -%}";

export function fixtureChatTemplate(arch: FixtureArch): string {
  return arch === 'glm4moe' ? GLM45_CHAT_TEMPLATE : GLM4_CHAT_TEMPLATE;
}

/** tokenizer_config.json as PreTrainedTokenizerFast reads it. */
export function fixtureTokenizerConfig(arch: FixtureArch): Record<string, unknown> {
  const decoder: Record<string, unknown> = {};
  fixtureSpecialTokens(arch).forEach((s, i) => {
    const { id: _id, ...rest } = addedToken(FIXTURE_REGULAR_TOKENS + i, s);
    decoder[String(FIXTURE_REGULAR_TOKENS + i)] = rest;
  });
  return {
    added_tokens_decoder: decoder,
    additional_special_tokens: fixtureSpecialTokens(arch).slice(1),
    chat_template: fixtureChatTemplate(arch),
    clean_up_tokenization_spaces: false,
    do_lower_case: false,
    eos_token: '<|endoftext|>',
    extra_special_tokens: {},
    model_input_names: ['input_ids', 'attention_mask'],
    model_max_length: 128000,
    pad_token: '<|endoftext|>',
    padding_side: 'left',
    remove_space: false,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
}

/** ChatGLM4's tokenizer.model: one line per regular token, `base64(bytes) rank`. */
export function fixtureTiktokenModel(): string {
  return fixtureBpe()
    .tokenBytes.map((bytes, rank) => `${Buffer.from(bytes).toString('base64')} ${rank}\n`)
    .join('');
}

/**
 * Reference BPE encoder of the fixture vocabulary (no special tokens): pre-tokenize, then apply merges by rank.
 * Meant for tests and for building expected token ids.
 */
export function fixtureEncode(text: string): number[] {
  const { merges } = fixtureBpe();
  const rank = new Map<number, number>();
  merges.forEach(([a, b], r) => rank.set(a * 1024 + b, r));
  const encoder = new TextEncoder();
  const ids: number[] = [];
  for (const piece of glmPreTokenize(text)) {
    let parts = [...encoder.encode(piece)];
    for (;;) {
      let bestRank = Infinity;
      let at = -1;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = rank.get(parts[i]! * 1024 + parts[i + 1]!);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          at = i;
        }
      }
      if (at < 0) break;
      parts = [...parts.slice(0, at), 256 + bestRank, ...parts.slice(at + 2)];
    }
    ids.push(...parts);
  }
  return ids;
}
