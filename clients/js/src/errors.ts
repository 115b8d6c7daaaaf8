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

/** The base of every error this client throws (aborts excepted: see above). */
export class SkillrunError extends Error {
  /** The class's name, so that logs and `err.name` checks tell the errors apart. */
  override name = 'SkillrunError';
}

/**
 * The server answered with an error status; a subclass per status names it,
 * and other statuses (413, 415 …) are a plain `APIError`.
 */
export class APIError extends SkillrunError {
  override name = 'APIError';
  /** The HTTP status. */
  readonly status: number;
  /** The parsed `application/problem+json` body, when the answer had one. */
  readonly problem: Problem | undefined;
  /** The answer's headers (`x-trace-id`, `RateLimit-*`, `Retry-After` …). */
  readonly headers: Headers;

  constructor(status: number, problem: Problem | undefined, headers: Headers, message?: string) {
    super(message ?? describe(status, problem));
    this.status = status;
    this.problem = problem;
    this.headers = headers;
  }
}

/**
 * `422 Title: detail (field: message; …)`, naming each field error once: the
 * ones the detail already says (the server's 422 detail quotes them) are not
 * repeated. The Python client's rule.
 */
function describe(status: number, problem: Problem | undefined): string {
  if (problem === undefined) return `HTTP ${status}`;
  const said = problem.detail ?? '';
  const fields = (problem.errors ?? [])
    .map((e) => `${e.field}: ${e.message}`)
    .filter((text) => !said.includes(text))
    .join('; ');
  return `${status} ${problem.title}${problem.detail ? `: ${problem.detail}` : ''}${fields ? ` (${fields})` : ''}`;
}

/** 400: the body is not JSON or not UTF-8, or a parameter or cursor is malformed. */
export class BadRequestError extends APIError {
  override name = 'BadRequestError';
}
/** 401: the `x-api-key` is missing or wrong. */
export class AuthenticationError extends APIError {
  override name = 'AuthenticationError';
}
/** 404: no such skill, or no run this key can see. */
export class NotFoundError extends APIError {
  override name = 'NotFoundError';
}
/** 409: e.g. cancelling a run that has already ended, an `Idempotency-Key` reused with another body, or a resume cursor past the run's log. */
export class ConflictError extends APIError {
  override name = 'ConflictError';
}
/** 422: inputs or options that break the schema. */
export class ValidationError extends APIError {
  override name = 'ValidationError';
  /** One entry per failing field, e.g. `{field: 'inputs.max_sentences', message: …}`. */
  get errors(): FieldError[] {
    return this.problem?.errors ?? [];
  }
}
/** 429: rate limited (after the retries, or at once when `Retry-After` is over a minute). */
export class RateLimitError extends APIError {
  override name = 'RateLimitError';
  /** Seconds to wait before trying again (`Retry-After`), when the server said. */
  readonly retryAfter: number | undefined;
  /** Made by the client from an answer; `retryAfter` is read from `headers`. */
  constructor(status: number, problem: Problem | undefined, headers: Headers) {
    super(status, problem, headers);
    this.retryAfter = retryAfterSeconds(headers);
  }
}
/** 5xx: the server (or a proxy in front of it) failed; 502/503/504 were retried first. */
export class InternalServerError extends APIError {
  override name = 'InternalServerError';
}

/** No answer: connection refused or reset, DNS, a body cut short (after the retries). */
export class APIConnectionError extends SkillrunError {
  override name = 'APIConnectionError';
}
/** No answer's headers, or no bytes of a stream, for `idleTimeoutMs`. */
export class APITimeoutError extends APIConnectionError {
  override name = 'APITimeoutError';
}

/**
 * A stream that could not be healed: it dropped before its run was known, a
 * reconnect was refused, `maxRetries` reconnects in a row failed, an event was
 * not JSON, or it was closed (`break`) before `done`. `cause` is the last failure.
 */
export class StreamError extends SkillrunError {
  override name = 'StreamError';
  /** The run the stream was following, when known. */
  readonly runId: string | undefined;
  /** The id of the last event delivered: resume from here with `runs.events(runId, {after})`. */
  readonly lastEventId: string | undefined;
  /** Made by the stream; the message is completed with the run and last event id. */
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
