/**
 * A deterministic corpus for comparing tokenizers: English, Chinese, Japanese, Korean, code, emoji and other
 * astral-plane characters, whitespace and newline runs, digits of many lengths, contractions, special tokens
 * inside text, combining marks, unpaired surrogates, invalid UTF-8 decoded lossily, random code points.
 * Generated from a seed (no files, no network): the same seed always gives the same strings.
 */

/** mulberry32: a small seeded generator. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ENGLISH = `the of and to in is you that it he was for on are as with his they I at be this have from or one had by
word but not what all were we when your can said there use an each which she do how their if will up other about out many
then them these so some her would make like him into time has look two more write go see number no way could people my than
first water been call who oil its now find long down day did get come made may part Hello World Tokenizer OpenAI GLM Zhipu
naïve café résumé coöperate façade jalapeño Straße İstanbul ſhip Kelvin`.split(/\s+/);
const CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D", "’s", "'x", "''"];
const CHINESE = '的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从知道模型语言智能清华大学北京上海深圳人工计算机';
const HIRAGANA = 'あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんがぎぐげござじずぜぞだぢづでどばびぶべぼぱぴぷぺぽゃゅょっー';
const KATAKANA = 'アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンガギグゲゴトークナイザー';
const KANJI = '日本語東京大阪言語処理自然文字変換形式情報';
const HANGUL = '한국어안녕하세요토크나이저모델';
const CODE = [
  'function add(a, b) {\n  return a + b;\n}\n',
  'def main():\n    for i in range(10):\n        print(f"{i:03d}")\n',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); return 0; }\n',
  'const x = [1, 2, 3].map((v) => v * 2); // double\n',
  '\tif (x != null && y >= 0) { z |= 0x1F; }\n',
  'SELECT id, name FROM users WHERE age > 30 ORDER BY name;\n',
  '<div class="a"><span>Hi</span></div>\r\n',
  '    x = {"key": [1, 2.5, -3e10], \'k2\': None}\n',
  '$ npm run build && node dist/cli.js --json "text"\n',
  'fn main() -> Result<(), Box<dyn Error>> { let v: Vec<u8> = vec![0; 16]; Ok(()) }\n',
];
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🇫🇷', '🇯🇵', '❤️', '🧑🏿‍💻', '🏳️‍🌈', '🤖', '🎉', '✅', '⚡', '🦀', '🐍', '☕', '🫠'];
const ASTRAL = ['𝐀𝐁𝐂', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '𠀀𠀁𠀂', '𐍈𐌰𐌻', '𓀀𓀁', '𝟘𝟙𝟚', '🄰🄱', '𖹀', '𞤀𞤁', '\u{2EBF0}\u{2EBF1}', '\u{31350}', '\u{1F8B0}'];
const SPACES = [' ', '  ', '\t', '\n', '\r\n', '\r', '\n\n', '\u00a0', '\u3000', '\u2028', '\u2029', '\u0085', '\ufeff', '\u200b', '\u2009', '\u000b', '\u000c', '\u1680', '\u180e'];
const SPECIALS = [
  '<|endoftext|>', '<|im_start|>', '<|im_end|>', '[gMASK]', '<sop>', '<|user|>', '<|assistant|>', '<|system|>', '<|observation|>',
  '<think>', '</think>', '<tool_call>', '</tool_call>', '<|im_sta', '<|end', '[gMASK', '<｜begin▁of▁sentence｜>', '<｜User｜>',
  '<｜Assistant｜>', '<|EOT|>', '<｜fim▁hole｜>', '/nothink', '<arg_key>', '<|begin_of_image|>',
];
const COMBINING = ['e\u0301', 'a\u0308', 'o\u0302\u0323', '\u1100\u1161\u11a8', 'n\u0303', '\u0301', 'A\u030a', 'ﬁ', 'Ⅻ', '①', '㎏', 'ｆｕｌｌｗｉｄｔｈ', '１２３'];
const DIGIT_SETS = ['0123456789', '٠١٢٣٤٥٦٧٨٩', '०१२३४५६७८९', '０１２３４５６７８９', '²³¹', '½¼'];
const PUNCT = '.,;:!?-—–…()[]{}<>/\\|@#$%^&*_+=~`"\'«»“”‘’。，、！？：；（）【】《》';

export function generateCorpus(count: number, seed = 20250401): string[] {
  const r = rng(seed);
  const int = (n: number): number => Math.floor(r() * n);
  const pick = <T>(a: readonly T[] | string): T => (typeof a === 'string' ? (Array.from(a)[int(Array.from(a).length)] as T) : a[int(a.length)]!);
  const chars = (alphabet: string, n: number): string => {
    const list = Array.from(alphabet);
    let s = '';
    for (let i = 0; i < n; i++) s += list[int(list.length)];
    return s;
  };
  const word = (): string => {
    let w = pick(ENGLISH);
    const x = r();
    if (x < 0.1) w = w.toUpperCase();
    else if (x < 0.2) w = w[0]!.toUpperCase() + w.slice(1);
    if (r() < 0.08) w += pick(CONTRACTIONS);
    return w;
  };
  const digits = (): string => {
    const set = r() < 0.8 ? '0123456789' : pick(DIGIT_SETS);
    const n = 1 + int(r() < 0.8 ? 12 : 40);
    let s = chars(set, n);
    if (r() < 0.2) s += (r() < 0.5 ? '.' : ',') + chars('0123456789', 1 + int(6));
    if (r() < 0.1) s = '-' + s;
    return s;
  };
  const randomCodePoint = (): string => {
    for (;;) {
      const plane = r();
      const cp = plane < 0.5 ? int(0x3000) : plane < 0.8 ? int(0x10000) : plane < 0.95 ? 0x10000 + int(0x20000) : int(0x110000);
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      return String.fromCodePoint(cp);
    }
  };
  const loneSurrogate = (): string => String.fromCharCode(0xd800 + int(0x800));
  const invalidUtf8 = (): string => {
    const bytes = new Uint8Array(1 + int(12));
    for (let i = 0; i < bytes.length; i++) bytes[i] = r() < 0.5 ? 0x80 + int(0x80) : int(0x100);
    return new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(bytes);
  };
  const fragment = (): string => {
    const k = int(16);
    switch (k) {
      case 0:
      case 1: {
        const n = 1 + int(15);
        const words: string[] = [];
        for (let i = 0; i < n; i++) words.push(word() + (r() < 0.15 ? pick(PUNCT) : ''));
        return words.join(r() < 0.9 ? ' ' : '  ');
      }
      case 2:
        return chars(CHINESE, 1 + int(30)) + (r() < 0.5 ? pick('。，！？') : '');
      case 3:
        return chars(HIRAGANA, 1 + int(10)) + chars(KANJI, int(6)) + chars(KATAKANA, int(10));
      case 4:
        return chars(HANGUL, 1 + int(12));
      case 5:
        return pick(CODE);
      case 6: {
        let s = '';
        for (let i = 0, n = 1 + int(6); i < n; i++) s += pick(EMOJI) + (r() < 0.3 ? ' ' : '');
        return s;
      }
      case 7:
        return pick(ASTRAL);
      case 8: {
        let s = '';
        const n = 1 + int(r() < 0.9 ? 8 : 120);
        for (let i = 0; i < n; i++) s += r() < 0.6 ? pick([' ', '\n', '\t']) : pick(SPACES);
        return s;
      }
      case 9:
        return digits();
      case 10:
        return pick(SPECIALS);
      case 11:
        return pick(COMBINING);
      case 12: {
        let s = '';
        for (let i = 0, n = 1 + int(8); i < n; i++) s += randomCodePoint();
        return s;
      }
      case 13:
        return r() < 0.5 ? loneSurrogate() : invalidUtf8();
      case 14:
        return chars(PUNCT, 1 + int(6));
      default:
        return pick(SPACES);
    }
  };
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = 1 + int(r() < 0.97 ? 8 : 60);
    let s = '';
    for (let j = 0; j < n; j++) s += fragment();
    out.push(s);
  }
  // a few fixed edge cases
  out.push('', ' ', '\n', '  \n  ', ' '.repeat(500), '\n'.repeat(300), 'a'.repeat(1000), '1'.repeat(100), '\u{1F600}'.repeat(50));
  out.push("I'm don't we'll they've she'd you're it's DON'T I'LL", '<|endoftext|><|endoftext|>', ' <|im_start|> ', 'x<|im_end|>y');
  return out;
}
