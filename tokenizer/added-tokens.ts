/**
 * Added tokens (special or not) are found in the text before the model runs, the way the Rust library
 * does it: leftmost-longest, non-overlapping matches of all contents; a `single_word` token only counts
 * between non-word characters; `lstrip` / `rstrip` swallow the whitespace beside it. Tokens with
 * `normalized: false` are matched in the raw text, the others in the normalized text.
 */
export interface AddedTokenSpec {
  readonly id: number;
  readonly content: string;
  readonly singleWord: boolean;
  readonly lstrip: boolean;
  readonly rstrip: boolean;
  readonly normalized: boolean;
  readonly special: boolean;
}

/** A piece of text: either an added token (id >= 0) or text still to encode (id -1). */
export interface Segment {
  readonly text: string;
  readonly id: number;
}

// Rust's regex crate `\w` and `\s` (Unicode)
const WORD_AT_START = /^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u;
const WORD_AT_END = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]$/u;
const SPACE_AT_START = /^\p{White_Space}*/u;
const SPACE_AT_END = /\p{White_Space}*$/u;

function escapeLiteral(s: string): string {
  return Array.from(s, (ch) => `\\u{${ch.codePointAt(0)!.toString(16)}}`).join('');
}

export class AddedTokenMatcher {
  private readonly regex: RegExp | null;
  private readonly byContent = new Map<string, AddedTokenSpec>();

  constructor(tokens: readonly AddedTokenSpec[], contentOf: (t: AddedTokenSpec) => string = (t) => t.content) {
    const contents: string[] = [];
    for (const t of tokens) {
      const content = contentOf(t);
      if (content.length === 0) continue;
      if (!this.byContent.has(content)) contents.push(content);
      this.byContent.set(content, t);
    }
    // Longest first: at the left-most position the alternation then takes the longest content.
    contents.sort((a, b) => b.length - a.length || (a < b ? -1 : a > b ? 1 : 0));
    this.regex = contents.length === 0 ? null : new RegExp(contents.map(escapeLiteral).join('|'), 'gu');
  }

  get empty(): boolean {
    return this.regex === null;
  }

  /** Splits `text` into added tokens and the text between them (empty pieces omitted). */
  split(text: string, out: Segment[]): void {
    const re = this.regex;
    if (re === null || text.length === 0) {
      if (text.length > 0) out.push({ text, id: -1 });
      return;
    }
    re.lastIndex = 0;
    let offset = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(text)) !== null) {
      const token = this.byContent.get(m[0])!;
      let start = m.index;
      let stop = start + m[0].length;
      if (token.singleWord) {
        const startSpace = start === 0 || !WORD_AT_END.test(text.slice(0, start));
        const stopSpace = stop === text.length || !WORD_AT_START.test(text.slice(stop));
        if (!startSpace || !stopSpace) continue;
      }
      if (token.lstrip) {
        const before = text.slice(0, start);
        const spaceStart = SPACE_AT_END.exec(before)!.index;
        start = Math.max(spaceStart, offset);
      }
      if (token.rstrip) stop += SPACE_AT_START.exec(text.slice(stop))![0].length;
      if (offset < start) out.push({ text: text.slice(offset, start), id: -1 });
      out.push({ text: text.slice(start, stop), id: token.id });
      offset = stop;
    }
    if (offset < text.length) out.push({ text: text.slice(offset), id: -1 });
  }
}
