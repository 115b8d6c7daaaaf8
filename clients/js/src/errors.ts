/**
 * The error tree (the same as the Python client's):
 *
 *     SkillrunError
 *     ├── APIError                 the server answered with an error status (.status, .problem)
 *     │   ├── BadRequestError      400
 *     │   ├── AuthenticationError  401
 *     │   ├── NotFoundError        404
 *     │   ├── ConflictError        409
 *     │   ├── ValidationError      422 (.errors names each failing field)
 *     │   ├── RateLimitError       429 (.retryAfter, seconds)
 *     │   └── InternalServerError  5xx
 *     ├── APIConnectionError       no answer: refused, reset, DNS …
 *     │   └── APITimeoutError      no bytes for idleTimeoutMs
 *     └── StreamError              a stream that could not be healed (.runId, .lastEventId)
 *
 * Aborting through an `AbortSignal` is not a SkillrunError: it rejects with the
 * signal's reason, a `DOMException` named `AbortError` by default, as `fetch` does.
 */
import type { FieldError, Problem } from './types.js';

export class SkillrunError extends Error {
  override name = 'SkillrunError';
}

export class APIError extends SkillrunError {
  override name = 'APIError';
  /** The HTTP status. */
  readonly status: number;
  /** The parsed `application/problem+json` body, when the answer had one. */
  readonly problem: Problem | undefined;
  readonly headers: Headers;

  constructor(status: number, problem: Problem | undefined, headers: Headers, message?: string) {
    super(message ?? describe(status, problem));
    this.status = status;
    this.problem = problem;
    this.headers = headers;
  }
}

function describe(status: number, problem: Problem | undefined): string {
  if (problem === undefined) return `HTTP ${status}`;
  const fields = problem.errors?.map((e) => `${e.field}: ${e.message}`).join('; ');
  return `${status} ${problem.title}${problem.detail ? `: ${problem.detail}` : ''}${fields ? ` (${fields})` : ''}`;
}

export class BadRequestError extends APIError {
  override name = 'BadRequestError';
}
export class AuthenticationError extends APIError {
  override name = 'AuthenticationError';
}
export class NotFoundError extends APIError {
  override name = 'NotFoundError';
}
export class ConflictError extends APIError {
  override name = 'ConflictError';
}
export class ValidationError extends APIError {
  override name = 'ValidationError';
  /** One entry per failing field, e.g. `{field: 'inputs.max_sentences', message: …}`. */
  get errors(): FieldError[] {
    return this.problem?.errors ?? [];
  }
}
export class RateLimitError extends APIError {
  override name = 'RateLimitError';
  /** Seconds to wait before trying again (`Retry-After`), when the server said. */
  readonly retryAfter: number | undefined;
  constructor(status: number, problem: Problem | undefined, headers: Headers) {
    super(status, problem, headers);
    this.retryAfter = retryAfterSeconds(headers);
  }
}
export class InternalServerError extends APIError {
  override name = 'InternalServerError';
}

export class APIConnectionError extends SkillrunError {
  override name = 'APIConnectionError';
}
export class APITimeoutError extends APIConnectionError {
  override name = 'APITimeoutError';
}

export class StreamError extends SkillrunError {
  override name = 'StreamError';
  /** The run the stream was following, when known. */
  readonly runId: string | undefined;
  /** The id of the last event delivered: resume from here with `runs.events(runId, {after})`. */
  readonly lastEventId: string | undefined;
  constructor(message: string, state: { runId: string | undefined; lastEventId: string | undefined }, cause?: unknown) {
    super(
      `${message} (run ${state.runId ?? 'unknown'}, last event ${state.lastEventId ?? 'none'})`,
      cause === undefined ? undefined : { cause },
    );
    this.runId = state.runId;
    this.lastEventId = state.lastEventId;
  }
}

/** `Retry-After` in seconds: delta-seconds or an HTTP date (RFC 9110, 10.2.3). */
export function retryAfterSeconds(headers: Headers): number | undefined {
  const raw = headers.get('retry-after');
  if (raw === null || raw.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(raw)) return Number(raw);
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

/** The error for a non-2xx answer whose body has been read as text. */
export function errorFromResponse(status: number, headers: Headers, body: string): APIError {
  let problem: Problem | undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) problem = parsed as Problem;
  } catch {
    // Not JSON (a proxy's HTML page, say): the status alone must do.
  }
  const Class = classFor(status);
  return new Class(status, problem, headers);
}

function classFor(status: number): new (status: number, problem: Problem | undefined, headers: Headers) => APIError {
  switch (status) {
    case 400:
      return BadRequestError;
    case 401:
      return AuthenticationError;
    case 404:
      return NotFoundError;
    case 409:
      return ConflictError;
    case 422:
      return ValidationError;
    case 429:
      return RateLimitError;
    default:
      return status >= 500 ? InternalServerError : APIError;
  }
}
