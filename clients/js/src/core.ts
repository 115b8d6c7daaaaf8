/**
 * One request to the API: headers, retries before anything happened on the
 * server, error mapping. Streams build on `send`; nothing here knows about events.
 */
import {
  APIConnectionError,
  APIError,
  APITimeoutError,
  errorFromResponse,
  retryAfterSeconds,
} from './errors.js';
import { CLIENT_DEFAULTS } from './generated/defaults.js';

/** A `fetch` the client can use instead of the platform's (a proxy agent, a test double). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** What `createClient` takes; only `baseUrl` and `apiKey` are required. */
export interface ClientOptions {
  /** Where the server is, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** Sent as `x-api-key` on every request. */
  apiKey: string;
  /** Defaults to the platform's `fetch`. */
  fetch?: FetchLike;
  /**
   * How often to retry a request that did not reach a run (connection error,
   * 429, 502, 503, 504), and how many reconnects in a row a stream may make
   * without receiving an event. Default 5.
   */
  maxRetries?: number;
  /**
   * The longest `Retry-After` waited for, in ms; a longer one goes to the
   * caller at once (as the error). Default 60 000.
   */
  maxRetryAfterMs?: number;
  /**
   * Streams: an event of a type this client does not know throws `StreamError`
   * instead of arriving as an `UnknownEvent`. For tests. Default false.
   */
  strict?: boolean;
  /**
   * A stream with no bytes at all for this long (heartbeats count) is treated
   * as dropped and resumed; a request whose answer's headers do not come within
   * this long fails with `APITimeoutError` (retried like a connection error).
   * `execute` is the exception: `/execute` answers when its run ends, so it
   * waits as long as the run takes (pass a `signal` to bound it). Default
   * 45 000 ms: three of the server's 15 s heartbeats.
   */
  idleTimeoutMs?: number;
  /** Extra headers for every request. */
  headers?: Record<string, string>;
}

/** Options every call takes. */
export interface RequestOptions {
  /** Aborts the call (and a stream, at any point); it rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Extra headers for this call. */
  headers?: Record<string, string>;
}

export interface SendOptions extends RequestOptions {
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** Wait at most idleTimeoutMs for the answer's headers (not for /execute, which answers at the end of a run). */
  headersTimeout?: boolean;
  /** Retry connection errors, 429, 502/503/504. */
  retry?: boolean;
}

const RETRY_STATUS = new Set([429, 502, 503, 504]);
// The behaviour table shared with the Python client: the spec's info.x-skillrun-client-defaults.
const BASE_DELAY_MS = CLIENT_DEFAULTS.backoff_initial_ms;
const MAX_DELAY_MS = CLIENT_DEFAULTS.backoff_max_ms;
const MULTIPLIER = CLIENT_DEFAULTS.backoff_multiplier;
const JITTER = CLIENT_DEFAULTS.backoff_jitter;

export class Core {
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly fetch: FetchLike;
  readonly maxRetries: number;
  readonly maxRetryAfterMs: number;
  readonly idleTimeoutMs: number;
  readonly strict: boolean;
  readonly headers: Record<string, string>;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.apiKey = options.apiKey;
    if (options.fetch === undefined && typeof globalThis.fetch !== 'function') {
      throw new TypeError('this platform has no fetch: pass createClient({ fetch })');
    }
    // Called unbound, a browser's fetch throws "Illegal invocation".
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.maxRetries = options.maxRetries ?? CLIENT_DEFAULTS.max_retries;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? CLIENT_DEFAULTS.max_retry_after_s * 1000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? CLIENT_DEFAULTS.idle_timeout_ms;
    this.strict = options.strict ?? false;
    this.headers = { ...options.headers };
  }

  url(path: string, query?: Record<string, string | number | undefined>): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    return `${this.baseUrl}${path}${qs ? `?${qs}` : ''}`;
  }

  /**
   * A 2xx answer, after retries; otherwise the mapped error. Its body is unread:
   * call `close()` when done with it (that also aborts a body still streaming).
   */
  async send(options: SendOptions): Promise<Opened> {
    for (let attempt = 0; ; attempt++) {
      const canRetry = options.retry !== false && attempt < this.maxRetries;
      let opened: Opened;
      try {
        opened = await this.#once(options);
      } catch (err) {
        if (!(err instanceof APIConnectionError) || !canRetry) throw err;
        await sleep(backoffMs(attempt), options.signal);
        continue;
      }
      const { response } = opened;
      if (response.ok) return opened;
      const error = errorFromResponse(response.status, response.headers, await readText(response));
      opened.close();
      if (!canRetry || !RETRY_STATUS.has(response.status)) throw error;
      const after = retryAfterSeconds(response.headers);
      if (after !== undefined && after * 1000 > this.maxRetryAfterMs) throw error;
      await sleep(after !== undefined ? after * 1000 : backoffMs(attempt), options.signal);
    }
  }

  /** `send`, then the body as JSON. */
  async json<T>(options: SendOptions): Promise<T> {
    const opened = await this.send(options);
    try {
      return (await opened.response.json()) as T;
    } catch (err) {
      throwIfAborted(options.signal);
      throw new APIConnectionError(`reading the answer failed: ${String(err)}`, { cause: err });
    } finally {
      opened.close();
    }
  }

  async #once(options: SendOptions): Promise<Opened> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      ...this.headers,
      ...options.headers,
      'x-api-key': this.apiKey,
    };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    // One controller per attempt, linked to the caller's signal for as long as
    // the answer's body may stream (until close()).
    const controller = new AbortController();
    const unlink = link(options.signal, controller);
    const close = (): void => {
      unlink();
      controller.abort();
    };
    let timedOut = false;
    const timer = options.headersTimeout
      ? setTimeout(() => {
          timedOut = true;
          controller.abort();
        }, this.idleTimeoutMs)
      : undefined;
    try {
      const init: RequestInit = { method: options.method, headers, signal: controller.signal };
      if (body !== undefined) init.body = body;
      const response = await this.fetch(this.url(options.path, options.query), init);
      return { response, signal: controller.signal, close };
    } catch (err) {
      close();
      throwIfAborted(options.signal);
      if (timedOut) throw new APITimeoutError(`no answer within ${this.idleTimeoutMs} ms`, { cause: err });
      throw new APIConnectionError(`could not reach ${this.baseUrl}: ${String(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }
}

/** An answer whose body is being (or may be) read. */
export interface Opened {
  response: Response;
  /** Aborts when the caller's signal does or `close()` is called. */
  signal: AbortSignal;
  close(): void;
}

/**
 * Exponential backoff with jitter, in ms, before retry `attempt` (0-based):
 * `base·2^attempt`, capped at 8 s (or at `base` when that is longer), stretched
 * by up to a quarter at random, so clients dropped together do not come back
 * together, and none sooner than asked: `base` is the server's `retry:` when it
 * sent one (WHATWG HTML 9.2.3, "reconnection time"). The Python client's rule.
 */
export function backoffMs(attempt: number, baseMs: number = BASE_DELAY_MS): number {
  const raw = Math.min(Math.max(MAX_DELAY_MS, baseMs), baseMs * MULTIPLIER ** Math.min(attempt, 64));
  return raw * (1 + JITTER * Math.random());
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/** Abort `controller` when `signal` does; returns the function that undoes the link. */
export function link(signal: AbortSignal | undefined, controller: AbortController): () => void {
  if (signal === undefined) return () => {};
  if (signal.aborted) {
    controller.abort(signal.reason);
    return () => {};
  }
  const onAbort = (): void => controller.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

async function readText(response: Response): Promise<string> {
  try {
    return await response.text();
  } catch {
    return '';
  }
}

/** How long an error's `Retry-After` asks to wait, in ms. */
export function retryAfterMs(err: unknown): number | undefined {
  if (!(err instanceof APIError)) return undefined;
  const after = retryAfterSeconds(err.headers);
  return after === undefined ? undefined : after * 1000;
}

export function isRetryableStatus(err: unknown): err is APIError {
  return err instanceof APIError && RETRY_STATUS.has(err.status);
}
