/**
 * The routes' schemas: what each route takes and answers, as JSON Schema. @fastify/swagger turns them into
 * the OpenAPI document of the HTTP API reference (`npm run docs:generate`). The request body is checked by
 * parseChatCompletion (request.ts), which answers in OpenAI's error shape with the parameter named, so
 * these schemas describe the routes without being a second validator (see createServer).
 */

const errorBody = {
  type: 'object',
  description: "OpenAI's error shape.",
  properties: {
    error: {
      type: 'object',
      properties: {
        message: { type: 'string' },
        type: { type: 'string', description: 'invalid_request_error, authentication_error, rate_limit_error or server_error' },
        param: { type: ['string', 'null'], description: 'The request field at fault, e.g. messages[0].role.' },
        code: { type: ['string', 'null'], description: 'e.g. invalid_value, invalid_json, body_too_large, rate_limit_exceeded, queue_full' },
      },
    },
  },
};

const usage = {
  type: 'object',
  properties: { prompt_tokens: { type: 'integer' }, completion_tokens: { type: 'integer' }, total_tokens: { type: 'integer' } },
};

const toolCall = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    type: { type: 'string', enum: ['function'] },
    function: { type: 'object', properties: { name: { type: 'string' }, arguments: { type: 'string', description: 'The arguments as a JSON object in a string.' } } },
  },
};

const message = {
  type: 'object',
  required: ['role'],
  properties: {
    role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant', 'tool', 'observation'], description: 'developer is read as system.' },
    content: {
      description: 'A string, null (an assistant turn with tool calls) or a list of text parts.',
      oneOf: [{ type: 'string' }, { type: 'null' }, { type: 'array', items: { type: 'object', required: ['type', 'text'], properties: { type: { type: 'string', enum: ['text'] }, text: { type: 'string' } } } }],
    },
    tool_calls: { type: 'array', items: toolCall, description: "An assistant turn's tool calls, passed back for the next turn." },
    tool_call_id: { type: 'string' },
  },
};

const chatRequest = {
  type: 'object',
  required: ['messages'],
  properties: {
    messages: { type: 'array', minItems: 1, items: message, description: 'The conversation: { role, content } objects, with tool_calls and tool_call_id for tool use.' },
    model: { type: 'string', description: 'Ignored: the server runs one model.' },
    max_tokens: { type: 'integer', minimum: 1, description: "At most the server's --max-tokens, which is also the default." },
    max_completion_tokens: { type: 'integer', minimum: 1, description: 'Takes precedence over max_tokens.' },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    top_k: { type: 'integer', minimum: 0 },
    seed: { type: 'integer' },
    stop: { description: 'Up to 4 strings; the reply ends where one starts.', oneOf: [{ type: 'string' }, { type: 'array', maxItems: 4, items: { type: 'string', minLength: 1 } }] },
    n: { type: 'integer', enum: [1] },
    stream: { type: 'boolean', description: 'Answer with server-sent events (chat.completion.chunk objects, then data: [DONE]).' },
    stream_options: { type: 'object', properties: { include_usage: { type: 'boolean' } } },
    tools: { type: 'array', items: { type: 'object', required: ['type', 'function'], properties: { type: { type: 'string', enum: ['function'] }, function: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, description: { type: 'string' }, parameters: { type: 'object' } } } } } },
    tool_choice: { description: '"none", "auto", "required" or { type: "function", function: { name } }.', oneOf: [{ type: 'string', enum: ['none', 'auto', 'required'] }, { type: 'object' }] },
    enable_thinking: { type: 'boolean', description: "GLM's thinking switch (also read from chat_template_kwargs)." },
    chat_template_kwargs: { type: 'object', properties: { enable_thinking: { type: 'boolean' } } },
  },
};

const chatResponse = {
  type: 'object',
  description: 'A chat.completion object (stream: false). With stream: true the body is text/event-stream.',
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['chat.completion'] },
    created: { type: 'integer' },
    model: { type: 'string' },
    choices: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          index: { type: 'integer' },
          message: {
            type: 'object',
            properties: {
              role: { type: 'string', enum: ['assistant'] },
              content: { type: ['string', 'null'] },
              reasoning_content: { type: 'string', description: "The text GLM wrote inside <think>...</think>." },
              tool_calls: { type: 'array', items: toolCall },
            },
          },
          finish_reason: { type: 'string', enum: ['stop', 'length', 'tool_calls'] },
        },
      },
    },
    usage,
  },
};

const refusal = (description: string) => ({ ...errorBody, description });

export const HEALTH_SCHEMA = {
  summary: 'Health',
  description: 'Whether the model is loaded, the workers connected and the queue.',
  tags: ['operations'],
  response: {
    200: {
      type: 'object',
      description: 'The server state.',
      properties: {
        status: { type: 'string', enum: ['ok', 'loading', 'shutting_down'] },
        model: { type: 'string' },
        model_loaded: { type: 'boolean' },
        workers: { type: 'object', properties: { configured: { type: 'integer' }, connected: { type: 'integer' } } },
        queue: {
          type: 'object',
          properties: { running: { type: 'integer' }, waiting: { type: 'integer' }, max_waiting: { type: 'integer' }, parallel: { type: 'integer', description: 'generations decoded together at most' } },
        },
      },
    },
  },
};

export const METRICS_SCHEMA = {
  summary: 'Prometheus metrics',
  description:
    'Requests, tokens, time to first token, queue depth, slots busy, batch size per step, decode tokens/s, rate-limit refusals, and process metrics, in the Prometheus text format.',
  tags: ['operations'],
  produces: ['text/plain'],
  response: { 200: { description: 'Prometheus text exposition format.', type: 'string' } },
};

export const MODELS_SCHEMA = {
  summary: 'List models',
  description: 'The one model this server runs.',
  tags: ['openai'],
  response: {
    200: {
      type: 'object',
      description: 'A list object with the one model.',
      properties: {
        object: { type: 'string', enum: ['list'] },
        data: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, object: { type: 'string', enum: ['model'] }, created: { type: 'integer' }, owned_by: { type: 'string' } } } },
      },
    },
    401: refusal('An API key is required (--api-key) and was missing or wrong.'),
  },
};

export const CHAT_COMPLETIONS_SCHEMA = {
  summary: 'Create a chat completion',
  description:
    'Up to `serve --parallel` generations at a time, decoded together (continuous batching); others wait in a bounded queue. The rate limit counts requests per client IP (the socket peer, or X-Forwarded-For from a trusted proxy) and answers 429 with Retry-After and X-RateLimit-* headers.',
  tags: ['openai'],
  body: chatRequest,
  response: {
    200: chatResponse,
    400: refusal('A field is invalid (param names it), the JSON is malformed, or the prompt does not fit the context.'),
    401: refusal('An API key is required (--api-key) and was missing or wrong.'),
    413: refusal('The body is larger than the limit.'),
    429: refusal('The rate limit is reached for this client: retry after Retry-After seconds.'),
    503: refusal('The queue is full or the server is shutting down: retry after Retry-After seconds.'),
    504: refusal('The request ran past the timeout.'),
  },
};
