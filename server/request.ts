/** Validation of an OpenAI chat completion request into what the generator takes. */
import type { ChatMessage } from '../tokenizer/index.js';
import type { GenerationRequest } from './generator.js';

/** An error answered in OpenAI's shape: `{ error: { message, type, param, code } }`. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly type = 'invalid_request_error',
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const bad = (param: string, message: string) => new ApiError(400, message, 'invalid_request_error', 'invalid_value', param);

export interface ChatCompletionRequest {
  readonly generation: GenerationRequest;
  readonly stop: readonly string[];
  readonly stream: boolean;
  readonly includeUsage: boolean;
}

export interface RequestLimits {
  /** Largest max_tokens accepted, and the budget when the request gives none. */
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
  /** The tokenizer's vocabulary, when known: a larger top_k is refused. */
  readonly vocabSize?: number;
}

/**
 * The largest top_k accepted. Sampling runs on the event loop and costs O(V log k) plus O(k) per token;
 * past a few hundred candidates the nucleus (top_p) decides anyway.
 */
export const MAX_TOP_K = 1000;

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'observation']);

function messageList(value: unknown): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) throw bad('messages', 'messages: expected a non-empty array');
  return value.map((m: unknown, i) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw bad(`messages[${i}]`, `messages[${i}]: expected an object`);
    const o = m as Record<string, unknown>;
    const role = o['role'];
    if (typeof role !== 'string' || !ROLES.has(role)) throw bad(`messages[${i}].role`, `messages[${i}].role: expected one of ${[...ROLES].join(', ')}`);
    let content = o['content'];
    if (Array.isArray(content)) {
      content = content
        .map((p: unknown, j) => {
          const part = p as { type?: unknown; text?: unknown } | null;
          if (typeof part !== 'object' || part === null || part.type !== 'text' || typeof part.text !== 'string') {
            throw bad(`messages[${i}].content[${j}]`, `messages[${i}].content[${j}]: only text parts are supported`);
          }
          return part.text;
        })
        .join('');
    } else if (content !== undefined && content !== null && typeof content !== 'string') {
      throw bad(`messages[${i}].content`, `messages[${i}].content: expected a string, null or a list of text parts`);
    }
    return { ...o, role: role === 'developer' ? 'system' : role, content: (content as string | null | undefined) ?? null };
  });
}

function numberIn(o: Record<string, unknown>, key: string, min: number, max: number, fallback: number, minExclusive = false): number {
  const v = o[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v > max || (minExclusive ? v <= min : v < min)) {
    throw bad(key, `${key}: expected a number ${minExclusive ? '>' : '>='} ${min} and <= ${max}`);
  }
  return v;
}

function tools(o: Record<string, unknown>): unknown[] | undefined {
  const list = o['tools'];
  if (list === undefined || list === null) return undefined;
  if (!Array.isArray(list)) throw bad('tools', 'tools: expected an array');
  list.forEach((t: unknown, i) => {
    const tool = t as { type?: unknown; function?: { name?: unknown } } | null;
    if (typeof tool !== 'object' || tool === null || tool.type !== 'function' || typeof tool.function?.name !== 'string') {
      throw bad(`tools[${i}]`, `tools[${i}]: expected { type: "function", function: { name, description?, parameters? } }`);
    }
  });
  const choice = o['tool_choice'];
  if (choice === undefined || choice === null || choice === 'auto' || choice === 'required') return list;
  if (choice === 'none') return undefined;
  const name = (choice as { function?: { name?: unknown } }).function?.name;
  if (typeof choice === 'object' && typeof name === 'string') {
    const chosen = list.filter((t) => (t as { function: { name: string } }).function.name === name);
    if (chosen.length === 0) throw bad('tool_choice', `tool_choice: no tool named ${JSON.stringify(name)}`);
    return chosen;
  }
  throw bad('tool_choice', 'tool_choice: expected "none", "auto", "required" or { type: "function", function: { name } }');
}

export function parseChatCompletion(body: unknown, limits: RequestLimits): ChatCompletionRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'the body must be a JSON object', 'invalid_request_error', 'invalid_json');
  const o = body as Record<string, unknown>;
  const messages = messageList(o['messages']);
  const maxKey = o['max_completion_tokens'] !== undefined && o['max_completion_tokens'] !== null ? 'max_completion_tokens' : 'max_tokens';
  const requested = o[maxKey];
  let maxTokens = limits.maxTokens;
  if (requested !== undefined && requested !== null) {
    if (typeof requested !== 'number' || !Number.isSafeInteger(requested) || requested < 1) throw bad(maxKey, `${maxKey}: expected a positive integer`);
    if (requested > limits.maxTokens) throw bad(maxKey, `${maxKey}: at most ${limits.maxTokens} on this server`);
    maxTokens = requested;
  }
  const stopValue = o['stop'];
  let stop: string[] = [];
  if (typeof stopValue === 'string') stop = [stopValue];
  else if (Array.isArray(stopValue)) {
    if (stopValue.length > 4 || stopValue.some((s) => typeof s !== 'string' || s === '')) throw bad('stop', 'stop: expected up to 4 non-empty strings');
    stop = stopValue as string[];
  } else if (stopValue !== undefined && stopValue !== null) throw bad('stop', 'stop: expected a string or a list of strings');
  const seed = o['seed'];
  if (seed !== undefined && seed !== null && (typeof seed !== 'number' || !Number.isSafeInteger(seed))) throw bad('seed', 'seed: expected an integer');
  const n = o['n'];
  if (n !== undefined && n !== null && n !== 1) throw bad('n', 'n: only 1 is supported');
  const stream = o['stream'];
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') throw bad('stream', 'stream: expected true or false');
  const streamOptions = o['stream_options'] as { include_usage?: unknown } | undefined | null;
  const kwargs = o['chat_template_kwargs'] as Record<string, unknown> | undefined | null;
  const thinking = o['enable_thinking'] ?? kwargs?.['enable_thinking'];
  if (thinking !== undefined && thinking !== null && typeof thinking !== 'boolean') throw bad('enable_thinking', 'enable_thinking: expected true or false');
  const topK = o['top_k'];
  const maxTopK = Math.min(MAX_TOP_K, limits.vocabSize ?? MAX_TOP_K);
  if (topK !== undefined && topK !== null && (typeof topK !== 'number' || !Number.isSafeInteger(topK) || topK < 0 || topK > maxTopK)) {
    throw bad('top_k', `top_k: expected an integer from 0 (off) to ${maxTopK}${maxTopK < MAX_TOP_K ? ', the vocabulary' : ''}`);
  }
  return {
    generation: {
      messages,
      tools: tools(o),
      enableThinking: thinking as boolean | undefined,
      temperature: numberIn(o, 'temperature', 0, 2, limits.temperature),
      topP: numberIn(o, 'top_p', 0, 1, limits.topP, true),
      topK: topK as number | undefined,
      maxTokens,
      seed: seed as number | undefined,
    },
    stop,
    stream: stream === true,
    includeUsage: streamOptions?.include_usage === true,
  };
}
