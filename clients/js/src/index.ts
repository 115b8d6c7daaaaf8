export { createClient } from './client.js';
export type { Client, ExecuteBody, RunOptions, EventsOptions, SkillMap, AnySkills, TypedResult } from './client.js';
export type { ClientOptions, RequestOptions, FetchLike } from './core.js';
export { SkillStream } from './stream.js';
export type { TextChunk, TextOptions } from './text.js';
export { SSEDecoder } from './sse.js';
export type { ServerSentEvent } from './sse.js';
export {
  SkillrunError,
  APIError,
  BadRequestError,
  AuthenticationError,
  NotFoundError,
  ConflictError,
  ValidationError,
  RateLimitError,
  InternalServerError,
  APIConnectionError,
  APITimeoutError,
  StreamError,
} from './errors.js';
export type * from './types.js';
