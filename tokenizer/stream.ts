/**
 * Incremental decoding for streaming output: push ids as they are generated and get the text they
 * complete. A character split across tokens is emitted once all its bytes have arrived, never as
 * replacement characters; bytes that can never form a character become U+FFFD as soon as that is
 * certain. The concatenation of everything returned (with `flush`) equals `decode` of all the ids.
 */
import type { DecodeOptions, Tokenizer } from './tokenizer.js';

export class StreamDecoder {
  private readonly bytes: TextDecoder | null;
  private readonly ids: number[] = [];
  private emitted = '';
  private readonly skip: boolean;

  constructor(
    private readonly tokenizer: Tokenizer,
    options: DecodeOptions = {},
  ) {
    this.skip = options.skipSpecialTokens ?? false;
    this.bytes = tokenizer.byteLevelDecoder ? new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }) : null;
  }

  /** Adds one id; returns the text it completes (possibly empty). Throws TokenIdError for a bad id. */
  push(id: number): string {
    const tokenizer = this.tokenizer;
    tokenizer.checkId(id);
    if (this.skip && tokenizer.isSpecial(id)) return '';
    if (this.bytes) return this.bytes.decode(tokenizer.tokenBytes(id), { stream: true });
    // Any other decoder: decode everything so far, hold back a trailing replacement character (it may be
    // an incomplete character), and return what was not returned yet.
    this.ids.push(id);
    const text = tokenizer.decode(this.ids, { skipSpecialTokens: this.skip });
    const stable = text.endsWith('\uFFFD') ? text.slice(0, -1) : text;
    if (!stable.startsWith(this.emitted)) return '';
    const out = stable.slice(this.emitted.length);
    this.emitted = stable;
    return out;
  }

  /** Ends the stream: whatever is still pending (incomplete bytes become U+FFFD). */
  flush(): string {
    if (this.bytes) return this.bytes.decode();
    const text = this.tokenizer.decode(this.ids, { skipSpecialTokens: this.skip });
    const out = text.startsWith(this.emitted) ? text.slice(this.emitted.length) : '';
    this.emitted = text;
    return out;
  }
}
