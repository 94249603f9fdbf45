/**
 * Chat templates: tokenizer_config.json's `chat_template` (Jinja) rendered with @huggingface/jinja the way
 * transformers' apply_chat_template does (messages, tools, add_generation_prompt, enable_thinking where the
 * template reads it, the special token strings), then encoded without the post-processor's tokens. GLM's
 * `[gMASK]<sop>` prefix ends up exactly once: kept when the template writes it, added when it does not.
 */
import { Template } from '@huggingface/jinja';
import { InputError } from '../converter/errors.js';
import type { Tokenizer } from './tokenizer.js';

export const CHAT_ROLES = ['system', 'user', 'assistant', 'observation', 'tool'] as const;

export interface ChatMessage {
  readonly role: string;
  /** Text, null (e.g. an assistant turn with only tool calls), or a list of content parts. */
  readonly content?: string | null | readonly unknown[];
  readonly [key: string]: unknown;
}

export interface ChatRequest {
  readonly messages: readonly ChatMessage[];
  /** Tool (function) descriptions, passed to the template as `tools`. */
  readonly tools?: readonly unknown[];
  /** End with the assistant's turn opener. Default true. */
  readonly addGenerationPrompt?: boolean;
  /** GLM-4.5's thinking switch; left undefined for the template unless set. */
  readonly enableThinking?: boolean;
  /** Any other template variables. */
  readonly variables?: Readonly<Record<string, unknown>>;
}

/**
 * Validates a messages document: either an array of messages or an object
 * `{ "messages": [...], "tools": [...], "add_generation_prompt": bool, "enable_thinking": bool }`.
 */
export function parseChatRequest(json: unknown, file: string): ChatRequest {
  const root = Array.isArray(json) ? { messages: json } : json;
  if (typeof root !== 'object' || root === null) throw new InputError(file, 'expected an array of messages or an object with "messages"');
  const o = root as Record<string, unknown>;
  const messages = o['messages'];
  if (!Array.isArray(messages)) throw new InputError(file, 'field messages: expected an array of messages');
  const parsed = messages.map((m: unknown, i): ChatMessage => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new InputError(file, `field messages[${i}]: expected an object`);
    const message = m as Record<string, unknown>;
    const role = message['role'];
    if (typeof role !== 'string' || !(CHAT_ROLES as readonly string[]).includes(role)) {
      throw new InputError(file, `field messages[${i}].role: expected one of ${CHAT_ROLES.join(', ')}, found ${JSON.stringify(role)}`);
    }
    const content = message['content'];
    if (content !== undefined && content !== null && typeof content !== 'string' && !Array.isArray(content)) {
      throw new InputError(file, `field messages[${i}].content: expected a string, null or a list of parts`);
    }
    return message as ChatMessage;
  });
  const tools = o['tools'];
  if (tools !== undefined && tools !== null && !Array.isArray(tools)) throw new InputError(file, 'field tools: expected an array');
  for (const key of ['add_generation_prompt', 'enable_thinking'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') throw new InputError(file, `field ${key}: expected true or false`);
  }
  const variables: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (!['messages', 'tools', 'add_generation_prompt', 'enable_thinking'].includes(k)) variables[k] = v;
  return {
    messages: parsed,
    tools: Array.isArray(tools) ? tools : undefined,
    addGenerationPrompt: o['add_generation_prompt'] as boolean | undefined,
    enableThinking: o['enable_thinking'] as boolean | undefined,
    variables,
  };
}

/** Renders the template to the prompt text. `templateTokens`: bos_token, eos_token… as strings. */
export function renderChatTemplate(template: string, request: ChatRequest, templateTokens: Readonly<Record<string, string>> = {}): string {
  const context: Record<string, unknown> = {
    ...templateTokens,
    ...request.variables,
    messages: request.messages,
    add_generation_prompt: request.addGenerationPrompt ?? true,
  };
  if (request.tools) context['tools'] = request.tools;
  if (request.enableThinking !== undefined) context['enable_thinking'] = request.enableThinking;
  let compiled: Template;
  try {
    compiled = new Template(template);
  } catch (e) {
    throw new Error(`chat template does not parse: ${(e as Error).message}`);
  }
  try {
    return compiled.render(context);
  } catch (e) {
    throw new Error(`chat template failed: ${(e as Error).message}`);
  }
}

export interface ChatPrompt {
  readonly prompt: string;
  readonly ids: number[];
}

function startsWith(ids: readonly number[], prefix: readonly number[]): boolean {
  return prefix.every((id, i) => ids[i] === id);
}

/** The ids every prompt must start with: the post-processor's prefix, else GLM's `[gMASK]<sop>` when the vocabulary has them. */
export function promptPrefixIds(tokenizer: Tokenizer): number[] {
  if (tokenizer.specialPrefixIds.length > 0) return [...tokenizer.specialPrefixIds];
  const gmask = tokenizer.tokenToId('[gMASK]');
  const sop = tokenizer.tokenToId('<sop>');
  return gmask !== undefined && sop !== undefined ? [gmask, sop] : [];
}

/** Renders and encodes a chat: the prompt text and its ids, with the prompt prefix exactly once. */
export function applyChatTemplate(tokenizer: Tokenizer, template: string, request: ChatRequest, templateTokens: Readonly<Record<string, string>> = {}): ChatPrompt {
  const rendered = renderChatTemplate(template, request, templateTokens);
  const ids = tokenizer.encodeIds(rendered, { addSpecialTokens: false });
  const prefix = promptPrefixIds(tokenizer);
  if (prefix.length === 0 || startsWith(ids, prefix)) return { prompt: rendered, ids };
  const prefixText = prefix.map((id) => tokenizer.idToToken(id) ?? '').join('');
  return { prompt: prefixText + rendered, ids: [...prefix, ...ids] };
}
