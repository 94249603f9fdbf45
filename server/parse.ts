/**
 * The text a GLM model writes, turned into OpenAI's fields as it streams: `<think>…</think>` becomes
 * reasoning_content, `<tool_call>name<arg_key>k</arg_key><arg_value>v</arg_value>…</tool_call>` becomes a
 * tool call, the rest is content. Stop strings end the text where they start. Both work piece by piece,
 * holding back only what could be the start of a tag or of a stop string.
 */

export interface ToolCall {
  readonly id: string;
  readonly type: 'function';
  readonly function: { readonly name: string; readonly arguments: string };
}

export type ReplyEvent = { kind: 'content'; text: string } | { kind: 'reasoning'; text: string } | { kind: 'tool_call'; call: ToolCall };

const THINK_OPEN = '<think>';
const THINK_CLOSE = '</think>';
const TOOL_OPEN = '<tool_call>';
const TOOL_CLOSE = '</tool_call>';

/** Length of the longest suffix of `text` that is a proper prefix of one of `tags`. */
function partialSuffix(text: string, tags: readonly string[]): number {
  let best = 0;
  for (const tag of tags) {
    for (let n = Math.min(tag.length - 1, text.length); n > best; n--) {
      if (text.endsWith(tag.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}

/** A value as the model wrote it: JSON when it parses as JSON (numbers, booleans, objects…), else the string. */
function argumentValue(raw: string): unknown {
  const text = raw.trim();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return raw;
  }
}

let callCounter = 0;

/** Parses the inside of one `<tool_call>…</tool_call>`; null when there is no function name. */
export function parseToolCall(body: string, id = `call_${Date.now().toString(36)}${(callCounter++).toString(36)}`): ToolCall | null {
  const firstKey = body.indexOf('<arg_key>');
  const name = (firstKey < 0 ? body : body.slice(0, firstKey)).trim();
  if (name === '') return null;
  const args: Record<string, unknown> = {};
  const pair = /<arg_key>([\s\S]*?)<\/arg_key>\s*<arg_value>([\s\S]*?)(?:<\/arg_value>|$)/g;
  for (const m of body.slice(Math.max(firstKey, 0)).matchAll(pair)) args[m[1]!.trim()] = argumentValue(m[2]!);
  return { id, type: 'function', function: { name, arguments: JSON.stringify(args) } };
}

/** Splits streamed model text into content, reasoning and tool calls. */
export class ReplyParser {
  private buffer = '';
  private state: 'content' | 'reasoning' | 'tool' = 'content';
  /** Whitespace is dropped at the start of the reply and of each section (GLM writes `\n<think>…</think>\n`). */
  private trim = { content: true, reasoning: true };

  /** `startInReasoning`: the prompt already opened a `<think>` block. */
  constructor(startInReasoning = false) {
    if (startInReasoning) this.state = 'reasoning';
  }

  push(text: string): ReplyEvent[] {
    this.buffer += text;
    return this.drain(false);
  }

  /** The end of the text: whatever was held back (an unclosed tool call is parsed as far as it goes). */
  end(): ReplyEvent[] {
    return this.drain(true);
  }

  private drain(final: boolean): ReplyEvent[] {
    const events: ReplyEvent[] = [];
    const emit = (kind: 'content' | 'reasoning', text: string) => {
      if (this.trim[kind]) {
        text = text.trimStart();
        if (text !== '') this.trim[kind] = false;
      }
      if (text === '') return;
      const last = events[events.length - 1];
      if (last && last.kind === kind) last.text += text;
      else events.push({ kind, text });
    };
    for (;;) {
      if (this.state === 'tool') {
        const close = this.buffer.indexOf(TOOL_CLOSE);
        if (close < 0 && !final) break;
        const body = close < 0 ? this.buffer : this.buffer.slice(0, close);
        this.buffer = close < 0 ? '' : this.buffer.slice(close + TOOL_CLOSE.length);
        const call = parseToolCall(body);
        if (call) events.push({ kind: 'tool_call', call });
        else emit('content', TOOL_OPEN + body + (close < 0 ? '' : TOOL_CLOSE));
        this.state = 'content';
        this.trim.content = true;
        if (close < 0) break;
        continue;
      }
      const tags = this.state === 'reasoning' ? [THINK_CLOSE] : [THINK_OPEN, TOOL_OPEN, THINK_CLOSE];
      let at = -1;
      let tag = '';
      for (const t of tags) {
        const i = this.buffer.indexOf(t);
        if (i >= 0 && (at < 0 || i < at)) {
          at = i;
          tag = t;
        }
      }
      if (at < 0) {
        const hold = final ? 0 : partialSuffix(this.buffer, tags);
        emit(this.state, this.buffer.slice(0, this.buffer.length - hold));
        this.buffer = this.buffer.slice(this.buffer.length - hold);
        break;
      }
      emit(this.state as 'content' | 'reasoning', this.buffer.slice(0, at));
      this.buffer = this.buffer.slice(at + tag.length);
      if (tag === THINK_OPEN) {
        this.state = 'reasoning';
        this.trim.reasoning = true;
      } else if (tag === THINK_CLOSE) {
        this.state = 'content';
        this.trim.content = true;
      } else this.state = 'tool';
    }
    if (final) this.buffer = '';
    return events;
  }
}

/** Cuts streamed text at the first stop string; holds back what could still become one. */
export class StopMatcher {
  private held = '';
  stopped = false;

  constructor(private readonly stops: readonly string[]) {}

  /** The text safe to pass on; sets `stopped` when a stop string appeared (nothing after it is returned). */
  push(text: string): string {
    if (this.stopped) return '';
    if (this.stops.length === 0) return text;
    const all = this.held + text;
    let cut = -1;
    for (const s of this.stops) {
      const i = all.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      this.held = '';
      return all.slice(0, cut);
    }
    const hold = partialSuffix(all, this.stops);
    this.held = all.slice(all.length - hold);
    return all.slice(0, all.length - hold);
  }

  end(): string {
    const rest = this.stopped ? '' : this.held;
    this.held = '';
    return rest;
  }
}
