/**
 * A run's events as an async iterable that heals itself: the I/O half.
 *
 * The first connection starts the run (or, for `runs.events`, follows one).
 * When a connection drops before `done` (reset, EOF mid-frame, no bytes for
 * idleTimeoutMs), the stream reconnects to `GET /v1/runs/{run_id}/events` with
 * `Last-Event-ID`. Every decision (which events are new, how long to wait, when
 * to give up) is `ResumeState`'s (./resume.ts, sans-IO); this module only
 * connects, reads, and sleeps.
 */
import { Core, type Opened, abortReason, link, sleep } from './core.js';
import { APIConnectionError, APITimeoutError, SkillrunError, StreamError } from './errors.js';
import { ResumeState } from './resume.js';
import { SSEDecoder } from './sse.js';
import { StepTexts, type TextChunk, type TextOptions } from './text.js';
import type { ExecuteResult, StreamEvent } from './types.js';

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
 * `SkillEvent` union, narrowed by `switch (event.type)`, or an `UnknownEvent`),
 * or call `result()`. Made by `client.stream` and `client.runs.events`. `O` is
 * the skill's outputs type when the client has a `SkillMap` (see `codegen`).
 */
export class SkillStream<O = Record<string, unknown>> implements AsyncIterable<StreamEvent> {
  /** How many times the stream reconnected. */
  reconnects = 0;

  readonly #core: Core;
  readonly #state: ResumeState;
  readonly #open: Opener;
  readonly #headers: Record<string, string> | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #controller = new AbortController();
  readonly #unlink: () => void;
  #started = false;
  #settled = false;
  #resolve!: (result: ExecuteResult) => void;
  #reject!: (err: unknown) => void;
  readonly #result: Promise<ExecuteResult>;
  readonly #texts = new StepTexts();
  /** The chunks the event delivered last means (`text()` yields them). */
  #fresh: TextChunk[] = [];

  /**
   * @internal Use `client.stream` or `client.runs.events`. Without `open`, the
   * first connection is `GET /v1/runs/{runId}/events` like every reconnect.
   */
  constructor(core: Core, open: Opener | undefined, init: SkillStreamInit = {}) {
    this.#core = core;
    this.#state = new ResumeState({
      runId: init.runId,
      lastEventId: init.lastEventId,
      maxRetries: core.maxRetries,
      maxRetryAfterMs: core.maxRetryAfterMs,
      strict: core.strict,
    });
    this.#open = open ?? ((signal) => this.#resume(signal, true));
    this.#headers = init.headers;
    this.#signal = init.signal;
    this.#unlink = link(init.signal, this.#controller);
    this.#result = new Promise<ExecuteResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // Nobody has to ask for the result: its rejection is not "unhandled".
    this.#result.catch(() => {});
  }

  /** The run being followed: from the `X-Run-Id` header or the first event. */
  get runId(): string | undefined {
    return this.#state.runId;
  }

  /** The SSE id of the last event delivered (the run's sequence number). */
  get lastEventId(): string | undefined {
    return this.#state.lastEventId;
  }

  /** Iterate once; `break` closes the connection. */
  [Symbol.asyncIterator](): AsyncIterator<StreamEvent> {
    if (this.#started) throw new SkillrunError('a stream can be iterated only once');
    this.#started = true;
    return this.#events();
  }

  /**
   * The `done` payload (without `type`): the same body `/execute` answers.
   * Without an iteration in progress it reads the stream to its end itself.
   */
  async result(): Promise<Omit<ExecuteResult, 'outputs'> & { outputs: O }> {
    if (!this.#started) {
      for await (const _event of this) {
        // Drained: result() alone needs no consumer.
      }
    }
    // The server's outputs follow the skill's outputs schema, which `O` is generated from.
    return (await this.#result) as Omit<ExecuteResult, 'outputs'> & { outputs: O };
  }

  /**
   * The text of one step (`stepId`; `options.index`: one `foreach` item), or of
   * all steps, as it is made: a `TextChunk` per `delta.text` until the stream ends
   * (at `done`), resuming underneath like iteration. A chunk with `restart: true`
   * (and no text) says the text yielded so far for its step is void: that
   * attempt failed and a retry or fallback follows. This iterates the stream (once,
   * like `for await`); `break` closes the connection.
   */
  async *text(stepId?: string, options: TextOptions = {}): AsyncGenerator<TextChunk, void, undefined> {
    const { index } = options;
    for await (const _event of this) {
      for (const chunk of this.#fresh) {
        if ((stepId === undefined || chunk.stepId === stepId) && (index === undefined || chunk.index === index)) yield chunk;
      }
    }
  }

  /**
   * The step's text once it has ended: the attempt that produced its output,
   * joined. `''`: it completed without text; `null`: it failed, was skipped, or the
   * run ended without it (`options.index`: a `foreach` item). Resolves as soon as
   * the step ends, whoever reads the stream; when nobody does yet, it reads the
   * stream to its end in the background (dropping the events, like `result()`,
   * which then resolves too). Rejects when the stream fails before the step ends.
   */
  finalText(stepId: string, options: TextOptions = {}): Promise<string | null> {
    if (!this.#started) this.result().catch(() => {}); // its failure reaches the caller through the texts
    return this.#texts.final(stepId, options.index);
  }

  async *#events(): AsyncGenerator<StreamEvent, void, undefined> {
    const signal = this.#controller.signal;
    const state = this.#state;
    let opened: Opened | undefined;
    // Why the last connection (or reconnect) failed: the state decides what follows
    // (a 503's or 429's Retry-After sets the next wait).
    let cause: unknown;
    try {
      opened = await this.#open(signal);
      for (;;) {
        if (opened !== undefined) {
          try {
            for await (const event of this.#read(opened)) {
              // Events already decoded from the last chunk are not delivered after an abort.
              this.#throwIfAborted();
              this.#fresh = this.#texts.observe(event);
              yield event;
              if (state.finished) return;
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
        await sleep(state.nextDelay(cause), signal);
        this.reconnects++;
        try {
          opened = await this.#resume(signal);
        } catch (err) {
          this.#throwIfAborted();
          cause = err;
        }
      }
    } catch (err) {
      this.#finish(err);
      throw err;
    } finally {
      this.#finish(new StreamError('the stream was closed before its done event', state));
    }
  }

  /** `GET /v1/runs/{runId}/events` after `lastEventId`. `retry`: let `Core` retry (the first connection only). */
  #resume(signal: AbortSignal, retry = false): Promise<Opened> {
    const request = this.#state.resumeRequest();
    return this.#core.send({
      method: 'GET',
      path: request.path,
      headers: { ...this.#headers, ...request.headers },
      signal,
      headersTimeout: true,
      // A reconnect is retried by the stream's own loop, on its budget of maxRetries.
      retry,
    });
  }

  async *#read(opened: Opened): AsyncGenerator<StreamEvent, void, undefined> {
    const { response } = opened;
    this.#state.onConnect(response.headers);
    if (response.body === null) throw new APIConnectionError('the answer has no body');
    const reader = response.body.getReader();
    const decoder = new SSEDecoder();
    try {
      for (;;) {
        const chunk = await this.#readChunk(reader);
        if (chunk === undefined) return;
        for (const message of decoder.push(chunk)) {
          const event = this.#state.accept(message);
          if (event === undefined) continue;
          if (this.#state.result !== undefined && !this.#settled) {
            // Settled before the consumer sees `done`: a `break` there keeps the result.
            this.#settled = true;
            this.#resolve(this.#state.result);
          }
          yield event;
        }
        this.#state.onRetry(decoder.retry);
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

  #throwIfAborted(): void {
    if (this.#signal?.aborted) throw abortReason(this.#signal);
  }

  #finish(err: unknown): void {
    this.#texts.close(this.#state.finished ? undefined : err);
    if (!this.#settled) {
      this.#settled = true;
      this.#reject(err);
    }
    this.#unlink();
    this.#controller.abort();
  }
}
