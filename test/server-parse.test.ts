/** The pieces under the server: GLM's reply markup to OpenAI fields, stop strings, the generation queue, request validation. */
import { ApiError, GenerationQueue, parseChatCompletion, parseToolCall, QueueFullError, ReplyParser, StopMatcher, templateMessages, type ReplyEvent } from '../server/index.js';
import { renderChatTemplate } from '../tokenizer/index.js';

/** Feeds text in pieces of `size` characters and merges adjacent events of a kind. */
function parseInPieces(text: string, size: number): ReplyEvent[] {
  const parser = new ReplyParser();
  const events: ReplyEvent[] = [];
  for (let i = 0; i < text.length; i += size) events.push(...parser.push(text.slice(i, i + size)));
  events.push(...parser.end());
  const merged: ReplyEvent[] = [];
  for (const e of events) {
    const last = merged[merged.length - 1];
    if (last && e.kind !== 'tool_call' && last.kind === e.kind) last.text += e.text;
    else merged.push(e.kind === 'tool_call' ? e : { ...e });
  }
  return merged.map((e) => (e.kind === 'tool_call' ? { kind: e.kind, call: { ...e.call, id: 'x' } } : e));
}

it('splits <think> into reasoning and <tool_call> into OpenAI tool calls with typed arguments, whatever the piece boundaries', () => {
  const text =
    '<think>The user wants weather.</think>Let me check.' +
    '<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n' +
    '<arg_key>units</arg_key>\n<arg_value>{"temp": "C"}</arg_value>\n<arg_key>note</arg_key>\n<arg_value>a < b</arg_value>\n</tool_call>';
  const expected = [
    { kind: 'reasoning', text: 'The user wants weather.' },
    { kind: 'content', text: 'Let me check.' },
    { kind: 'tool_call', call: { id: 'x', type: 'function', function: { name: 'get_weather', arguments: JSON.stringify({ city: 'Paris', days: 3, units: { temp: 'C' }, note: 'a < b' }) } } },
  ];
  for (const size of [1, 2, 3, 7, 1000]) expect(parseInPieces(text, size)).toEqual(expected);
});

it('drops the whitespace GLM writes around its sections', () => {
  expect(parseInPieces('\n<think>\nHmm.</think>\n\nAnswer: 42', 1)).toEqual([
    { kind: 'reasoning', text: 'Hmm.' },
    { kind: 'content', text: 'Answer: 42' },
  ]);
  expect(parseInPieces('  plain  text ', 3)).toEqual([{ kind: 'content', text: 'plain  text ' }]);
  const calls = parseInPieces('<tool_call>a</tool_call>\n<tool_call>b</tool_call>', 2);
  expect(calls.map((e) => e.kind)).toEqual(['tool_call', 'tool_call']);
});

it('keeps plain text, a lone "<", and an unnamed tool call as content; parses an unclosed call at the end', () => {
  expect(parseInPieces('a < b and <b>bold</b>', 1)).toEqual([{ kind: 'content', text: 'a < b and <b>bold</b>' }]);
  expect(parseInPieces('x<tool_call></tool_call>y', 2)).toEqual([{ kind: 'content', text: 'x<tool_call></tool_call>y' }]);
  expect(parseInPieces('<tool_call>f\n<arg_key>q</arg_key><arg_value>true', 4)).toEqual([
    { kind: 'tool_call', call: { id: 'x', type: 'function', function: { name: 'f', arguments: '{"q":true}' } } },
  ]);
  expect(parseToolCall('noargs')!.function).toEqual({ name: 'noargs', arguments: '{}' });
  expect(parseToolCall('  ')).toBeNull();
});

it('cuts text at the first stop string across pieces and holds back only possible starts', () => {
  const m = new StopMatcher(['END', '\n\n']);
  expect(m.push('hello E')).toBe('hello ');
  expect(m.push('N')).toBe('');
  expect(m.push('d')).toBe('ENd');
  expect(m.push(' more EN')).toBe(' more ');
  expect(m.push('D tail')).toBe('');
  expect(m.stopped).toBe(true);
  expect(m.push('later')).toBe('');
  const n = new StopMatcher(['xyz']);
  expect(n.push('abcxy')).toBe('abc');
  expect(n.end()).toBe('xy');
  expect(new StopMatcher([]).push('anything')).toBe('anything');
});

it('queues one generation at a time, refuses beyond the bound, and frees a place when a waiter aborts', async () => {
  const depths: number[] = [];
  const q = new GenerationQueue(1, (waiting) => depths.push(waiting));
  const first = await q.acquire();
  const controller = new AbortController();
  const second = q.acquire(controller.signal);
  await expect(q.acquire()).rejects.toBeInstanceOf(QueueFullError);
  controller.abort(new Error('gone'));
  await expect(second).rejects.toThrow('gone');
  const third = q.acquire();
  let got = false;
  void third.then(() => (got = true));
  await Promise.resolve();
  expect(got).toBe(false);
  first();
  (await third)();
  expect(q.running).toBe(0);
  expect(q.depth).toBe(0);
  expect(depths).toContain(1);
});

it('validates requests into generation options', () => {
  const limits = { maxTokens: 100, temperature: 0.8, topP: 0.95 };
  const r = parseChatCompletion(
    {
      model: 'any',
      messages: [
        { role: 'developer', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] },
      ],
      temperature: 0,
      top_p: 0.5,
      max_completion_tokens: 7,
      stop: 'x',
      seed: 3,
      stream: true,
      tools: [{ type: 'function', function: { name: 'f' } }, { type: 'function', function: { name: 'g' } }],
      tool_choice: { type: 'function', function: { name: 'g' } },
    },
    limits,
  );
  expect(r.generation).toMatchObject({ temperature: 0, topP: 0.5, maxTokens: 7, seed: 3, tools: [{ type: 'function', function: { name: 'g' } }] });
  expect(r.generation.messages.map((m) => [m.role, m.content])).toEqual([
    ['system', 'be brief'],
    ['user', 'ab'],
  ]);
  expect(r.stop).toEqual(['x']);
  expect(r.stream).toBe(true);
  expect(parseChatCompletion({ messages: [{ role: 'user', content: 'x' }], tool_choice: 'none', tools: [{ type: 'function', function: { name: 'f' } }] }, limits).generation.tools).toBeUndefined();
  const bad = (body: unknown) => {
    try {
      parseChatCompletion(body, limits);
    } catch (e) {
      expect(e).toBeInstanceOf(ApiError);
      return (e as ApiError).param;
    }
    throw new Error('accepted');
  };
  expect(bad({ messages: [] })).toBe('messages');
  expect(bad({ messages: [{ role: 'robot', content: 'x' }] })).toBe('messages[0].role');
  expect(bad({ messages: [{ role: 'user', content: [{ type: 'image_url' }] }] })).toBe('messages[0].content[0]');
  expect(bad({ messages: [{ role: 'user', content: 'x' }], max_tokens: 101 })).toBe('max_tokens');
  expect(bad({ messages: [{ role: 'user', content: 'x' }], temperature: 3 })).toBe('temperature');
  expect(bad({ messages: [{ role: 'user', content: 'x' }], top_p: 0 })).toBe('top_p');
  expect(bad({ messages: [{ role: 'user', content: 'x' }], stop: ['a', 'b', 'c', 'd', 'e'] })).toBe('stop');
  expect(bad({ messages: [{ role: 'user', content: 'x' }], n: 2 })).toBe('n');
});

it('hands the chat template tool calls with their arguments as objects, as GLM-4.5\'s template iterates them', () => {
  const template =
    "{%- for m in messages -%}<|{{ m.role }}|>{{ m.content or '' }}" +
    '{%- if m.tool_calls -%}{%- for tc in m.tool_calls -%}{%- if tc.function -%}{%- set tc = tc.function -%}{%- endif -%}' +
    "<tool_call>{{ tc.name }}{%- for k, v in tc.arguments.items() -%}<arg_key>{{ k }}</arg_key><arg_value>{{ v if v is string else v | tojson }}</arg_value>{%- endfor -%}</tool_call>" +
    '{%- endfor -%}{%- endif -%}{%- endfor -%}';
  const messages = templateMessages([
    { role: 'user', content: 'Weather?' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","days":2}' } }] },
    { role: 'tool', content: 'sunny', tool_call_id: 'c1' },
  ]);
  expect(renderChatTemplate(template, { messages })).toBe(
    '<|user|>Weather?<|assistant|><tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value><arg_key>days</arg_key><arg_value>2</arg_value></tool_call><|tool|>sunny',
  );
});
