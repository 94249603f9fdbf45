/**
 * What the server asks of a model: render a chat and stream the reply's text. The engine's implementation
 * renders with the tokenizer's chat template and generates with one GenerationSession (which keeps the KV
 * cache of the previous request, so a conversation's next turn only evaluates its new part). Tests inject
 * their own generator to script the model's output.
 */
import { basename } from 'node:path';
import { BatchScheduler, GenerationSession, LoadedModel, type BatchStep, type GenerationStats, type KvCacheType } from '../engine/index.js';
import { applyChatTemplate, loadTokenizer, StreamDecoder, type ChatMessage, type LoadedTokenizer } from '../tokenizer/index.js';

export interface GenerationRequest {
  readonly messages: readonly ChatMessage[];
  /** OpenAI tool descriptions (already filtered by tool_choice). */
  readonly tools?: readonly unknown[];
  readonly enableThinking?: boolean;
  readonly temperature: number;
  readonly topP: number;
  readonly topK?: number;
  readonly maxTokens: number;
  readonly seed?: number;
}

export interface GenerationUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Prompt tokens found in the KV cache from the previous request. */
  readonly cachedTokens: number;
  /** 'length': the token budget or the context ended the reply; 'stop': the model did. */
  readonly finishReason: 'stop' | 'length';
  /** Speculative decoding: tokens the MTP layer drafted and how many verification kept (absent without it). */
  readonly draftedTokens?: number;
  readonly acceptedDraftTokens?: number;
}

/** A text generation; a caller that stops iterating early (return()) ends it and frees the model. */
export type TextGeneration = AsyncGenerator<string, GenerationUsage, undefined>;

export interface TextGenerator {
  readonly modelId: string;
  /** Context length in tokens, when known. */
  readonly contextLength?: number;
  /** The tokenizer's vocabulary, when known (bounds a request's top_k). */
  readonly vocabSize?: number;
  /** Generations it runs at once (decoded together); default 1. */
  readonly parallel?: number;
  /** Calls `listener` after every batched engine step (for /metrics). */
  watchSteps?(listener: (step: BatchStep) => void): void;
  /** The reply's text pieces, markup (`<think>`, `<tool_call>`) included; returns the usage. */
  generate(request: GenerationRequest): TextGeneration;
  /** For /health. */
  health(): { modelLoaded: boolean; workersConfigured: number; workersConnected: number };
}

/** A request the model cannot take (e.g. a prompt longer than the context): answered with 400. */
export class PromptError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly param?: string,
  ) {
    super(message);
  }
}

/** Tokens whose text must reach the reply parser even though they are special tokens. */
const MARKUP_TOKENS = ['<think>', '</think>', '<tool_call>', '</tool_call>', '<arg_key>', '</arg_key>', '<arg_value>', '</arg_value>'];

/** OpenAI messages as the chat template expects them: text parts joined, tool-call arguments as objects. */
export function templateMessages(messages: readonly ChatMessage[]): ChatMessage[] {
  return messages.map((m) => {
    const out: Record<string, unknown> = { ...m };
    if (Array.isArray(m.content)) out['content'] = (m.content as { text?: string }[]).map((p) => p.text ?? '').join('');
    if (Array.isArray(m['tool_calls'])) {
      out['tool_calls'] = (m['tool_calls'] as { function?: { name?: string; arguments?: unknown } }[]).map((c) => {
        const args = c.function?.arguments;
        let parsed: unknown = args;
        if (typeof args === 'string') {
          try {
            parsed = JSON.parse(args);
          } catch {
            parsed = {};
          }
        }
        return { ...c, function: { ...c.function, arguments: parsed }, name: c.function?.name, arguments: parsed };
      });
    }
    return out as ChatMessage;
  });
}

export interface EngineGeneratorOptions {
  model: string;
  tokenizer: string;
  threads?: number;
  contextLength?: number;
  kvCache?: KvCacheType;
  /** The id /v1/models reports (default: the model file's name without .m). */
  modelId?: string;
  /** Generations decoded together, each in its own KV slot (default 1: one at a time). */
  parallel?: number;
}

export class EngineGenerator implements TextGenerator {
  readonly modelId: string;
  /** One generation at a time on slot 0 (a model with one slot), else continuous batching over the slots. */
  private readonly session: GenerationSession | BatchScheduler;
  private readonly stepListeners: ((step: BatchStep) => void)[] = [];
  private readonly markup = new Map<number, string>();
  private readonly template: string;
  /** The ids the session's KV cache holds after the last request. */
  private history: number[] = [];

  constructor(
    readonly model: LoadedModel,
    readonly tokenizer: LoadedTokenizer,
    modelId?: string,
  ) {
    if (!tokenizer.chatTemplate) throw new Error(`${tokenizer.file}: the tokenizer has no chat template`);
    this.template = tokenizer.chatTemplate;
    this.modelId = modelId ?? basename(model.path).replace(/\.m$/, '');
    this.session =
      model.slots > 1 ? new BatchScheduler(model, { onStep: (step) => this.stepListeners.forEach((l) => l(step)) }) : new GenerationSession(model);
    for (const t of MARKUP_TOKENS) {
      const id = tokenizer.tokenizer.tokenToId(t);
      if (id !== undefined) this.markup.set(id, t);
    }
  }

  static async load(o: EngineGeneratorOptions): Promise<EngineGenerator> {
    const tokenizer = await loadTokenizer(o.tokenizer);
    const model = new LoadedModel(o.model, { threads: o.threads, contextLength: o.contextLength, kvCache: o.kvCache, slots: o.parallel });
    return new EngineGenerator(model, tokenizer, o.modelId);
  }

  get parallel(): number {
    return this.model.slots;
  }

  watchSteps(listener: (step: BatchStep) => void): void {
    this.stepListeners.push(listener);
  }

  get contextLength(): number {
    return this.model.contextLength;
  }

  get vocabSize(): number {
    return this.tokenizer.tokenizer.vocabSize;
  }

  health() {
    // A cluster's traffic lists every node (this one first); its workers were all connected when the model loaded.
    const workers = Math.max(this.model.traffic.length - 1, 0);
    return { modelLoaded: true, workersConfigured: workers, workersConnected: workers };
  }

  async *generate(request: GenerationRequest): TextGeneration {
    const { tokenizer } = this.tokenizer;
    let ids: number[];
    try {
      ids = applyChatTemplate(
        tokenizer,
        this.template,
        { messages: templateMessages(request.messages), tools: request.tools?.length ? request.tools : undefined, enableThinking: request.enableThinking },
        this.tokenizer.templateTokens,
      ).ids;
    } catch (e) {
      throw new PromptError((e as Error).message, 'invalid_messages', 'messages');
    }
    const room = this.model.contextLength - ids.length;
    if (room < 1) {
      throw new PromptError(
        `the prompt has ${ids.length} tokens; this model's context is ${this.model.contextLength}`,
        'context_length_exceeded',
        'messages',
      );
    }
    // The session keeps the longest common prefix with what its cache holds: the previous prompt and
    // every generated id but the last (which was never evaluated). The same count is kept here so that a
    // reply cut short still reports it; the batch scheduler says what the slot it gave holds.
    let cached = 0;
    const limit = Math.min(this.history.length, ids.length - 1);
    while (cached < limit && this.history[cached] === ids[cached]) cached++;
    const stops = new Set(this.tokenizer.stopIds);
    const stream = new StreamDecoder(tokenizer, { skipSpecialTokens: true });
    const options = {
      maxTokens: Math.min(request.maxTokens, room),
      temperature: request.temperature,
      topP: request.topP,
      topK: request.topK,
      seed: request.seed,
      stopIds: this.tokenizer.stopIds,
      vocabLimit: tokenizer.vocabSize,
    };
    const run: AsyncGenerator<number, GenerationStats> =
      this.session instanceof BatchScheduler ? this.session.generate(ids, options, (reused) => (cached = reused)) : this.session.generate(ids, options);
    const generated: number[] = [];
    let finished = false;
    let failed = false;
    let finishReason: GenerationUsage['finishReason'] = 'length';
    let stats: GenerationStats | undefined;
    try {
      let step = await run.next();
      for (; !step.done; step = await run.next()) {
        generated.push(step.value);
        if (stops.has(step.value)) {
          finishReason = 'stop';
          continue;
        }
        const piece = this.markup.get(step.value) ?? stream.push(step.value);
        if (piece) yield piece;
      }
      stats = step.value;
      finished = true;
      const rest = stream.flush();
      if (rest) yield rest;
    } catch (e) {
      failed = true;
      throw e;
    } finally {
      this.history = [...ids, ...generated.slice(0, -1)];
      if (!finished && !failed) {
        await run.return(undefined as never);
        // A caller that stopped early (a stop string, a disconnect) still gets the usage from return().
        // eslint-disable-next-line no-unsafe-finally
        return { promptTokens: ids.length, completionTokens: generated.length, cachedTokens: cached, finishReason: 'stop' };
      }
    }
    const drafts = stats && stats.draftedTokens > 0 ? { draftedTokens: stats.draftedTokens, acceptedDraftTokens: stats.acceptedTokens } : {};
    return { promptTokens: ids.length, completionTokens: generated.length, cachedTokens: cached, finishReason, ...drafts };
  }
}