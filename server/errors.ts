/** Every error of `serve` and the gateway in OpenAI's shape, internal details kept in the log. */
import type { FastifyInstance } from 'fastify';
import { ApiError } from './request.js';

/** Fastify's own errors under OpenAI-style codes. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_content_length',
};

export function errorBody(status: number, message: string, type: string, code: string | null) {
  return new ApiError(status, message, type, code).body();
}

function typeFor(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** Answers thrown errors and unknown routes as `{ error: { message, type, param, code } }`; a 5xx says no more than that. */
export function answerErrorsInOpenAIShape(app: FastifyInstance): void {
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (error instanceof ApiError) {
      void reply.code(error.statusCode).headers(error.headers).send(error.body());
      return;
    }
    const status = error.statusCode ?? 500;
    if (status >= 500) request.log.error(error);
    const message = status >= 500 ? 'internal server error' : error.message;
    void reply.code(status).send(errorBody(status, message, typeFor(status), FASTIFY_CODES[error.code ?? ''] ?? error.code ?? null));
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(errorBody(404, `no route ${request.method} ${request.url}`, 'invalid_request_error', 'not_found'));
  });
}
