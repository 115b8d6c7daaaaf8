/**
 * A run's events as an async iterable that heals itself.
 *
 * The first connection starts the run (or, for `runs.events`, follows one).
 * When a connection drops before `done` (reset, EOF mid-frame, no bytes for
 * idleTimeoutMs), the stream reconnects to `GET /v1/runs/{run_id}/events` with
 * `Last-Event-ID`, after a backoff with jitter (based on the server's `retry:`
 * when it sent one), and skips any event id it has already delivered: the
 * consumer sees every event exactly once, in order.
 */
import { Core, type Opened, abortReason, backoffMs, isRetryableStatus, link, retryAfterMs, sleep } from './core.js';
import { APIConnectionError, APITimeoutError, SkillrunError, StreamError } from './errors.js';
import { SSEDecoder, type ServerSentEvent } from './sse.js';
import type { ExecuteResult, SkillEvent } from './types.js';

/** Opens one connection; `signal` aborts it. */
export type Opener = (signal: AbortSignal) => Promise<Opened>;

/** @internal How a stream starts; made by `createClient`, not by users. */
export interface SkillStreamInit {
  /** Stops the stream; it then rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** The run, when already known (`runs.events`). */
  runId?: string | undefined;
  /** Deliver only events after this id. */
  lastEventId?: string | undefined;
  /** The call's extra headers, sent on every reconnect too. */
  headers?: Record<string, string> | undefined;
}

/**
 * A run's events: iterate it once with `for await` (each event a member of the
 * `SkillEvent` union, narrowed by `switch (event.type)`), or call `result()`.
 * Made by `client.stream` and `client.runs.events`.
 */
export class SkillStream implements AsyncIterable<SkillEvent> {
  /** The run being followed: from the `X-Run-Id` header or the first event. */
  runId: string | undefined;
  /** The SSE id of the last event delivered (the run's sequence number). */
  lastEventId: string | undefined;
  /** How many times the stream reconnected. */
  reconnects = 0;

  readonly #core: Core;
  readonly #open: Opener;
  readonly #headers: Record<string, string> | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #controller = new AbortController();
  readonly #unlink: () => void;
  #started = false;
  #retryMs: number | undefined;
  #settled = false;
  #resolve!: (result: ExecuteResult) => void;
  #reject!: (err: unknown) => void;
  readonly #result: Promise<ExecuteResult>;

  /**
   * @internal Use `client.stream` or `client.runs.events`. Without `open`, the
   * first connection is `GET /v1/runs/{runId}/events` like every reconnect.
   */
  constructor(core: Core, open: Opener | undefined, init: SkillStreamInit = {}) {
    this.#core = core;
    this.#open = open ?? ((signal) => this.#resume(signal, true));
    this.#headers = init.headers;
    this.#signal = init.signal;
    this.runId = init.runId;
    this.lastEventId = init.lastEventId;
    this.#unlink = link(init.signal, this.#controller);
    this.#result = new Promise<ExecuteResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // Nobody has to ask for the result: its rejection is not "unhandled".
    this.#result.catch(() => {});
  }

  /** Iterate once; `break` closes the connection. */
  [Symbol.asyncIterator](): AsyncIterator<SkillEvent> {
    if (this.#started) throw new SkillrunError('a stream can be iterated only once');
    this.#started = true;
    return this.#events();
  }

  /**
   * The `done` payload (without `type`): the same body `/execute` answers.
   * Without an iteration in progress it reads the stream to its end itself.
   */
  async result(): Promise<ExecuteResult> {
    if (!this.#started) {
      for await (const _event of this) {
        // Drained: result() alone needs no consumer.
      }
    }
    return this.#result;
  }

  async *#events(): AsyncGenerator<SkillEvent, void, undefined> {
    const signal = this.#controller.signal;
    let opened: Opened | undefined;
    let failures = 0;
    // Why the last connection (or reconnect) failed: its Retry-After sets the
    // next wait, and a StreamError carries it.
    let cause: unknown;
    try {
      opened = await this.#open(signal);
      for (;;) {
        if (opened !== undefined) {
          try {
            for await (const event of this.#read(opened)) {
              failures = 0;
              // Events already decoded from the last chunk are not delivered after an abort.
              this.#throwIfAborted();
              yield event;
              if (event.type === 'done') return;
            }
            cause = new APIConnectionError('the connection ended before the done event');
          } catch (err) {
            this.#throwIfAborted();
            if (!(err instanceof APIConnectionError)) throw err;
            cause = err;
          } finally {
            opened.close();
            opened = undefined;
          }
        }
        if (this.runId === undefined) {
          throw new StreamError('the stream dropped before its run id was known', this, cause);
        }
        if (failures >= this.#core.maxRetries) {
          throw new StreamError(`gave up after ${failures} reconnects in a row`, this, cause);
        }
        await sleep(retryAfterMs(cause) ?? backoffMs(failures, this.#retryMs), signal);
        failures++;
        this.reconnects++;
        try {
          opened = await this.#resume(signal);
        } catch (err) {
          this.#throwIfAborted();
          if (!(err instanceof APIConnectionError) && !isRetryableStatus(err)) {
            throw new StreamError('resuming the stream failed', this, err);
          }
          cause = err; // a 503's or 429's Retry-After sets the next wait
        }
      }
    } catch (err) {
      this.#finish(err);
      throw err;
    } finally {
      this.#finish(new StreamError('the stream was closed before its done event', this));
    }
  }

  /** `GET /v1/runs/{runId}/events` after `lastEventId`. `retry`: let `Core` retry (the first connection only). */
  #resume(signal: AbortSignal, retry = false): Promise<Opened> {
    const headers: Record<string, string> = { ...this.#headers, accept: 'text/event-stream' };
    if (this.lastEventId !== undefined) headers['last-event-id'] = this.lastEventId;
    return this.#core.send({
      method: 'GET',
      path: `/v1/runs/${encodeURIComponent(this.runId ?? '')}/events`,
      headers,
      signal,
      headersTimeout: true,
      // A reconnect is retried by the stream's own loop, on its budget of maxRetries.
      retry,
    });
  }

  async *#read(opened: Opened): AsyncGenerator<SkillEvent, void, undefined> {
    const { response } = opened;
    this.runId ??= response.headers.get('x-run-id') ?? undefined;
    if (response.body === null) throw new APIConnectionError('the answer has no body');
    const reader = response.body.getReader();
    const decoder = new SSEDecoder();
    try {
      for (;;) {
        const chunk = await this.#readChunk(reader);
        if (chunk === undefined) return;
        for (const message of decoder.push(chunk)) {
          const event = this.#accept(message);
          if (event !== undefined) yield event;
        }
        if (decoder.retry !== undefined) this.#retryMs = decoder.retry;
      }
    } finally {
      decoder.end();
      reader.cancel().catch(() => {});
    }
  }

  /** The next chunk, `undefined` at the end; no bytes for idleTimeoutMs is a drop. */
  async #readChunk(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<Uint8Array | undefined> {
    const ms = this.#core.idleTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const idle = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new APITimeoutError(`no bytes for ${ms} ms`)), ms);
    });
    try {
      const { done, value } = await Promise.race([reader.read(), idle]);
      return done ? undefined : value;
    } catch (err) {
      if (err instanceof APITimeoutError) throw err;
      throw new APIConnectionError(`the connection dropped: ${String(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  #accept(message: ServerSentEvent): SkillEvent | undefined {
    if (message.id !== undefined && this.lastEventId !== undefined && !isAfter(message.id, this.lastEventId)) {
      return undefined; // delivered before the connection dropped
    }
    let event: unknown;
    try {
      event = JSON.parse(message.data);
    } catch (err) {
      throw new StreamError(`event ${message.id ?? '?'} is not JSON`, this, err);
    }
    if (typeof event !== 'object' || event === null || typeof (event as { type?: unknown }).type !== 'string') {
      throw new StreamError(`event ${message.id ?? '?'} has no type`, this);
    }
    const typed = event as SkillEvent;
    if (message.id !== undefined) this.lastEventId = message.id;
    this.runId ??= typed.run_id;
    if (typed.type === 'done') {
      const { type: _type, message: _message, ...result } = typed;
      this.#settled = true;
      this.#resolve(result);
    }
    return typed;
  }

  #throwIfAborted(): void {
    if (this.#signal?.aborted) throw abortReason(this.#signal);
  }

  #finish(err: unknown): void {
    if (!this.#settled) {
      this.#settled = true;
      this.#reject(err);
    }
    this.#unlink();
    this.#controller.abort();
  }
}

/** Is SSE id `a` later than `b`? Ids are the run's sequence numbers; others compare as unequal. */
function isAfter(a: string, b: string): boolean {
  if (/^[0-9]+$/.test(a) && /^[0-9]+$/.test(b)) return Number(a) > Number(b);
  return a !== b;
}
