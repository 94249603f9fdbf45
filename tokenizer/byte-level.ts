/**
 * GPT-2's byte-level mapping: every byte gets a printable character, so that any UTF-8 text becomes a
 * string of "byte characters" that a BPE vocabulary can spell. Printable Latin-1 bytes map to
 * themselves; the 68 others map to U+0100 upward in byte order.
 */

import type { Fields, JsonObject } from './json-fields.js';

/** Byte (0..255) to the code point that stands for it. */
export const BYTE_TO_CODEPOINT: readonly number[] = (() => {
  const table: number[] = new Array<number>(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = printable ? b : 256 + next++;
  }
  return table;
})();

/** Byte to its character. */
export const BYTE_TO_CHAR: readonly string[] = BYTE_TO_CODEPOINT.map((cp) => String.fromCodePoint(cp));

/** Code point (< 512) to its byte, or -1 for a code point that is no byte character. */
const CODEPOINT_TO_BYTE: Int16Array = (() => {
  const table = new Int16Array(512).fill(-1);
  BYTE_TO_CODEPOINT.forEach((cp, b) => {
    table[cp] = b;
  });
  return table;
})();

/** The byte a character stands for, or -1. */
export function byteOfCodePoint(cp: number): number {
  return cp < 512 ? CODEPOINT_TO_BYTE[cp]! : -1;
}

const utf8 = new TextEncoder();

/** Text to its byte-level spelling (UTF-8 bytes, each replaced by its character). */
export function toByteLevel(text: string): string {
  const bytes = utf8.encode(text);
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += BYTE_TO_CHAR[bytes[i]!]!;
  return out;
}

/**
 * The bytes a token string stands for, the way the ByteLevel decoder reads it: when every character
 * is a byte character, the bytes they stand for; otherwise the token's own UTF-8 bytes.
 */
export function byteLevelTokenBytes(token: string): Uint8Array {
  const out = new Uint8Array(token.length);
  let n = 0;
  for (let i = 0; i < token.length; i++) {
    const b = byteOfCodePoint(token.charCodeAt(i));
    if (b < 0) return utf8.encode(token);
    out[n++] = b;
  }
  return out.subarray(0, n);
}

/** Whether every character of `token` is a byte character (so the token spells bytes). */
export function isByteLevelString(token: string): boolean {
  for (let i = 0; i < token.length; i++) if (byteOfCodePoint(token.charCodeAt(i)) < 0) return false;
  return true;
}

/** UTF-8 encodes `text` into `buffer` (grown as needed); returns the buffer and the byte count. */
export function utf8Into(text: string, buffer: Uint8Array): { buffer: Uint8Array; length: number } {
  if (buffer.length < text.length * 3) buffer = new Uint8Array(text.length * 3 + 16);
  const { written } = utf8.encodeInto(text, buffer);
  return { buffer, length: written };
}

/** The options a ByteLevel pre-tokenizer or post-processor carries in tokenizer.json. */
export interface ByteLevelOptions {
  readonly add_prefix_space: boolean;
  readonly trim_offsets: boolean;
  readonly use_regex: boolean;
}

/** Reads them with the Rust library's defaults (all true). */
export function parseByteLevelOptions(f: Fields, o: JsonObject, path: string): ByteLevelOptions {
  return {
    add_prefix_space: f.bool(o['add_prefix_space'], `${path}.add_prefix_space`, true),
    trim_offsets: f.bool(o['trim_offsets'], `${path}.trim_offsets`, true),
    use_regex: f.bool(o['use_regex'], `${path}.use_regex`, true),
  };
}
