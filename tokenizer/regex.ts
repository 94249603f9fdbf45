/**
 * Oniguruma (Ruby syntax, as the Rust `tokenizers` library compiles tokenizer.json patterns) to
 * JavaScript regular expressions with the `u` flag. The differences handled:
 * - `\s` `\S` are Unicode White_Space in Oniguruma (JS's `\s` adds U+FEFF and lacks U+0085);
 * - `\d` `\w` `\b` and `\h` are Unicode decimal digits, letters/marks/digits/connectors, and hex digits;
 * - `(?i:…)` and `(?i)` groups, which Node 20 lacks, become explicit case classes (ASCII-style: a
 *   letter and its simple upper/lower case; Oniguruma does not fold `ſ` to `s` here either);
 * - `.` excludes only `\n`; `^` `$` are line anchors; `\A` `\z` `\Z` are string anchors;
 * - identity escapes that JS's `u` mode rejects (`\'`, `\"`, `\<`…), `\x{…}`, `\e`, `\a`, `{,n}`,
 *   `\p{Han}`-style script names.
 * Atomic groups, possessive quantifiers, nested classes and class intersections are refused with an error.
 */

export class RegexTranslationError extends Error {
  constructor(pattern: string, detail: string) {
    super(`cannot translate regex ${JSON.stringify(pattern)}: ${detail}`);
    this.name = 'RegexTranslationError';
  }
}

const WORD_CLASS_BODY = '\\p{L}\\p{M}\\p{Nd}\\p{Pc}';
const SPACE = '\\p{White_Space}';
const NOT_SPACE = '\\P{White_Space}';

const propertyCache = new Map<string, string>();

/** A JS property escape body (`L`, `Script=Han`…) for an Oniguruma property name. */
function propertyName(name: string, pattern: string): string {
  const cached = propertyCache.get(name);
  if (cached !== undefined) return cached;
  const aliases: Record<string, string> = {
    alpha: 'Alphabetic',
    space: 'White_Space',
    upper: 'Uppercase',
    lower: 'Lowercase',
    digit: 'Nd',
    any: 'Any',
  };
  const candidates = [name, `Script=${name}`, aliases[name.toLowerCase()] ?? ''];
  for (const candidate of candidates) {
    if (!candidate) continue;
    try {
      new RegExp(`\\p{${candidate}}`, 'u');
      propertyCache.set(name, candidate);
      return candidate;
    } catch {
      // try the next spelling
    }
  }
  throw new RegexTranslationError(pattern, `unknown Unicode property \\p{${name}}`);
}

function hexEscape(cp: number): string {
  return `\\u{${cp.toString(16)}}`;
}

/** The case variants of one code point (itself first). */
function caseVariants(cp: number): number[] {
  const ch = String.fromCodePoint(cp);
  const out = [cp];
  for (const v of [ch.toLowerCase(), ch.toUpperCase()]) {
    const vcp = v.codePointAt(0)!;
    if (String.fromCodePoint(vcp) === v && !out.includes(vcp)) out.push(vcp);
  }
  return out;
}

interface Flags {
  ignoreCase: boolean;
  dotAll: boolean;
}

class Translator {
  private i = 0;
  private readonly src: string;

  constructor(readonly pattern: string) {
    this.src = pattern;
  }

  fail(detail: string): never {
    throw new RegexTranslationError(this.pattern, `${detail} at offset ${this.i}`);
  }

  translate(): string {
    const out = this.sequence({ ignoreCase: false, dotAll: false }, false);
    if (this.i < this.src.length) this.fail('unbalanced )');
    return out;
  }

  /** Translates until the end or the `)` that closes the current group (not consumed). */
  private sequence(outer: Flags, inGroup: boolean): string {
    const flags: Flags = { ...outer };
    let out = '';
    const src = this.src;
    while (this.i < src.length) {
      const c = src[this.i]!;
      if (c === ')') {
        if (!inGroup) this.fail('unbalanced )');
        return out;
      }
      if (c === '\\') {
        out += this.escape(flags, false);
      } else if (c === '[') {
        out += this.charClass(flags);
      } else if (c === '(') {
        out += this.group(flags);
      } else if (c === '.') {
        this.i++;
        out += flags.dotAll ? '[\\s\\S]' : '[^\\n]';
      } else if (c === '{') {
        const m = /^\{(\d*)(,?)(\d*)\}/.exec(src.slice(this.i, this.i + 24));
        if (m && (m[1] !== '' || (m[2] === ',' && m[3] !== ''))) {
          this.i += m[0].length;
          out += `{${m[1] === '' ? '0' : m[1]}${m[2]}${m[3]}}`;
          out += this.quantifierSuffix();
        } else {
          this.i++;
          out += '\\{';
        }
      } else if (c === '*' || c === '+' || c === '?') {
        this.i++;
        out += c + this.quantifierSuffix();
      } else if (c === '^' || c === '$' || c === '|') {
        this.i++;
        out += c;
      } else {
        const cp = src.codePointAt(this.i)!;
        this.i += cp > 0xffff ? 2 : 1;
        out += this.literal(cp, flags);
      }
    }
    if (inGroup) this.fail('unterminated group');
    return out;
  }

  private quantifierSuffix(): string {
    const next = this.src[this.i];
    if (next === '?') {
      this.i++;
      return '?';
    }
    if (next === '+') this.fail('possessive quantifiers are not supported');
    return '';
  }

  private literal(cp: number, flags: Flags): string {
    if (flags.ignoreCase) {
      const variants = caseVariants(cp);
      if (variants.length > 1) return `[${variants.map(hexEscape).join('')}]`;
    }
    const ch = String.fromCodePoint(cp);
    if ('^$\\.*+?()[]{}|/'.includes(ch)) return `\\${ch}`;
    if (cp < 0x20 || cp === 0x7f || (cp >= 0xd800 && cp <= 0xdfff)) return hexEscape(cp);
    return ch;
  }

  private group(outer: Flags): string {
    const src = this.src;
    this.i++; // (
    let open = '(';
    const flags: Flags = { ...outer };
    if (src[this.i] === '?') {
      const rest = src.slice(this.i, this.i + 64);
      let m: RegExpExecArray | null;
      if (rest.startsWith('?#')) {
        const end = src.indexOf(')', this.i);
        if (end < 0) this.fail('unterminated comment');
        this.i = end + 1;
        return '';
      } else if ((m = /^\?(:|=|!|<=|<!)/.exec(rest))) {
        open = `(${m[0]}`;
        this.i += m[0].length;
      } else if ((m = /^\?<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest))) {
        open = `(?<${m[1]}>`;
        this.i += m[0].length;
      } else if (rest.startsWith('?>')) {
        this.fail('atomic groups (?>...) are not supported');
      } else if ((m = /^\?([imx]*)(?:-([imx]*))?(:|\))/.exec(rest))) {
        const on = m[1] ?? '';
        const off = m[2] ?? '';
        if (on.includes('x') || off.includes('x')) this.fail('extended mode (?x) is not supported');
        const apply = (f: Flags): void => {
          if (on.includes('i')) f.ignoreCase = true;
          if (off.includes('i')) f.ignoreCase = false;
          if (on.includes('m')) f.dotAll = true; // Ruby's m is JS's s
          if (off.includes('m')) f.dotAll = false;
        };
        this.i += m[0].length;
        if (m[3] === ')') {
          // (?i) applies to the rest of the enclosing group
          apply(outer);
          return '';
        }
        apply(flags);
        open = '(?:';
      } else {
        this.fail('unsupported group syntax');
      }
    }
    const body = this.sequence(flags, true);
    this.i++; // )
    return `${open}${body})`;
  }

  /** An escape outside a class, or (inClass) the body of one inside a class. */
  private escape(flags: Flags, inClass: boolean): string {
    const src = this.src;
    const c = src[this.i + 1];
    if (c === undefined) this.fail('trailing backslash');
    this.i += 2;
    switch (c) {
      case 's':
        return inClass ? SPACE : SPACE.replace(/^/, '[') + ']';
      case 'S':
        return inClass ? NOT_SPACE : `[${NOT_SPACE}]`;
      case 'd':
        return '\\p{Nd}';
      case 'D':
        return '\\P{Nd}';
      case 'w':
        return inClass ? WORD_CLASS_BODY : `[${WORD_CLASS_BODY}]`;
      case 'W':
        if (inClass) this.fail('\\W inside a character class is not supported');
        return `[^${WORD_CLASS_BODY}]`;
      case 'h':
        return inClass ? '0-9a-fA-F' : '[0-9a-fA-F]';
      case 'H':
        if (inClass) this.fail('\\H inside a character class is not supported');
        return '[^0-9a-fA-F]';
      case 'p':
      case 'P': {
        const m = /^\{(\^?)([A-Za-z0-9_ =-]+)\}/.exec(src.slice(this.i, this.i + 64));
        if (!m) this.fail('malformed \\p{...}');
        this.i += m[0].length;
        const negated = (c === 'P') !== (m[1] === '^');
        return `\\${negated ? 'P' : 'p'}{${propertyName(m[2]!, this.pattern)}}`;
      }
      case 'b':
      case 'B': {
        if (inClass) return c === 'b' ? '\\x08' : this.fail('\\B inside a character class');
        const w = `[${WORD_CLASS_BODY}]`;
        const boundary = `(?:(?<=${w})(?!${w})|(?<!${w})(?=${w}))`;
        return c === 'b' ? boundary : `(?!${boundary})`;
      }
      case 'A':
        return '(?<![\\s\\S])';
      case 'z':
        return '(?![\\s\\S])';
      case 'Z':
        return '(?=\\n?(?![\\s\\S]))';
      case 'R':
        return '(?:\\r\\n|[\\n\\v\\f\\r\\x85\\u2028\\u2029])';
      case 'n':
      case 'r':
      case 't':
      case 'f':
      case 'v':
        return `\\${c}`;
      case 'e':
        return '\\x1b';
      case 'a':
        return '\\x07';
      case 'x': {
        let m = /^\{([0-9A-Fa-f]{1,8})\}/.exec(src.slice(this.i, this.i + 12));
        if (m) {
          this.i += m[0].length;
          return this.codePointOut(parseInt(m[1]!, 16), flags, inClass);
        }
        m = /^[0-9A-Fa-f]{1,2}/.exec(src.slice(this.i, this.i + 2));
        if (!m) this.fail('malformed \\x escape');
        this.i += m[0].length;
        return this.codePointOut(parseInt(m[0], 16), flags, inClass);
      }
      case 'u': {
        const m = /^[0-9A-Fa-f]{4}/.exec(src.slice(this.i, this.i + 4));
        if (!m) this.fail('malformed \\u escape');
        this.i += 4;
        return this.codePointOut(parseInt(m[0], 16), flags, inClass);
      }
      case '0': {
        const m = /^[0-7]{0,2}/.exec(src.slice(this.i, this.i + 2))!;
        this.i += m[0].length;
        return this.codePointOut(m[0] ? parseInt(m[0], 8) : 0, flags, inClass);
      }
      case 'k': {
        const m = /^<([A-Za-z_][A-Za-z0-9_]*)>/.exec(src.slice(this.i, this.i + 64));
        if (!m || inClass) this.fail('malformed \\k<name>');
        this.i += m[0].length;
        return `\\k<${m[1]}>`;
      }
      default:
        if (/[1-9]/.test(c) && !inClass) return `\\${c}`;
        if (/[A-Za-z0-9]/.test(c)) this.fail(`unsupported escape \\${c}`);
        {
          // identity escape of a punctuation or other non-alphanumeric character
          this.i -= 1;
          const cp = src.codePointAt(this.i)!;
          this.i += cp > 0xffff ? 2 : 1;
          return this.codePointOut(cp, flags, inClass);
        }
    }
  }

  private codePointOut(cp: number, flags: Flags, inClass: boolean): string {
    if (inClass) return (flags.ignoreCase ? caseVariants(cp) : [cp]).map(hexEscape).join('');
    return this.literal(cp, flags);
  }

  private charClass(flags: Flags): string {
    const src = this.src;
    this.i++; // [
    let negated = false;
    if (src[this.i] === '^') {
      negated = true;
      this.i++;
    }
    const parts: string[] = [];
    let first = true;
    for (;;) {
      if (this.i >= src.length) this.fail('unterminated character class');
      const c = src[this.i]!;
      if (c === ']' && !first) {
        this.i++;
        break;
      }
      first = false;
      if (c === '[') this.fail('nested character classes are not supported');
      if (c === '&' && src[this.i + 1] === '&') this.fail('character class intersection && is not supported');
      let from: number | undefined;
      if (c === '\\') {
        const next = src[this.i + 1];
        if (next !== undefined && /[^A-Za-z0-9]/.test(next)) {
          this.i++;
          from = src.codePointAt(this.i)!;
          this.i += from > 0xffff ? 2 : 1;
        } else if (next === 'x' || next === 'u' || next === '0' || next === 'n' || next === 'r' || next === 't' || next === 'f' || next === 'v' || next === 'e' || next === 'a') {
          const controls: Record<string, number> = { n: 10, r: 13, t: 9, f: 12, v: 11, e: 27, a: 7 };
          if (next in controls) {
            this.i += 2;
            from = controls[next]!;
          } else {
            const esc = this.escape({ ignoreCase: false, dotAll: false }, true);
            const m = /^\\u\{([0-9a-f]+)\}$/.exec(esc);
            if (!m) this.fail('unexpected escape in class');
            from = parseInt(m[1]!, 16);
          }
        } else {
          parts.push(this.escape(flags, true));
          continue;
        }
      } else {
        from = src.codePointAt(this.i)!;
        this.i += from > 0xffff ? 2 : 1;
      }
      // a range?
      if (src[this.i] === '-' && src[this.i + 1] !== ']' && this.i + 1 < src.length) {
        this.i++;
        let to: number;
        if (src[this.i] === '\\') {
          const next = src[this.i + 1];
          const controls: Record<string, number> = { n: 10, r: 13, t: 9, f: 12, v: 11, e: 27, a: 7 };
          if (next !== undefined && next in controls) {
            this.i += 2;
            to = controls[next]!;
          } else if (next !== undefined && /[^A-Za-z0-9]/.test(next)) {
            this.i++;
            to = src.codePointAt(this.i)!;
            this.i += to > 0xffff ? 2 : 1;
          } else {
            const esc = this.escape({ ignoreCase: false, dotAll: false }, true);
            const m = /^\\u\{([0-9a-f]+)\}$/.exec(esc);
            if (!m) this.fail('bad range end in class');
            to = parseInt(m[1]!, 16);
          }
        } else {
          to = src.codePointAt(this.i)!;
          this.i += to > 0xffff ? 2 : 1;
        }
        if (to < from) this.fail('reversed range in class');
        parts.push(`${hexEscape(from)}-${hexEscape(to)}`);
        if (flags.ignoreCase) {
          const lo = Math.max(from, 0x41);
          const hi = Math.min(to, 0x7a);
          for (let cp = lo; cp <= hi; cp++) {
            for (const v of caseVariants(cp)) if (v !== cp) parts.push(hexEscape(v));
          }
          if (to > 0x7f && /\p{L}/u.test(String.fromCodePoint(from))) this.fail('case-insensitive non-ASCII ranges are not supported');
        }
      } else {
        parts.push((flags.ignoreCase ? caseVariants(from) : [from]).map(hexEscape).join(''));
      }
    }
    if (parts.length === 0) return negated ? '[\\s\\S]' : '[]';
    return `[${negated ? '^' : ''}${parts.join('')}]`;
  }
}

/** The JavaScript source (for the `u` flag) equivalent to an Oniguruma pattern. */
export function translateOnigurumaSource(pattern: string): string {
  return new Translator(pattern).translate();
}

/** Compiles an Oniguruma pattern to a global, Unicode, multi-line JavaScript RegExp. */
export function compileOniguruma(pattern: string): RegExp {
  const source = translateOnigurumaSource(pattern);
  try {
    return new RegExp(source, 'gmu');
  } catch (e) {
    throw new RegexTranslationError(pattern, `translated pattern does not compile (${(e as Error).message})`);
  }
}

/** A RegExp that matches `literal` exactly. */
export function literalRegex(literal: string): RegExp {
  return new RegExp(Array.from(literal, (ch) => hexEscape(ch.codePointAt(0)!)).join(''), 'gu');
}

/** A split/replace pattern as tokenizer.json spells it: a literal string or an Oniguruma regex. */
export type PatternSpec = { readonly String: string } | { readonly Regex: string };

/** The compiled (global, Unicode) RegExp of a pattern. */
export function compilePattern(pattern: PatternSpec): RegExp {
  return 'Regex' in pattern ? compileOniguruma(pattern.Regex) : literalRegex(pattern.String);
}
