/**
 * The sans-IO core of a stream (the Python client's `ResumeState`, the same
 * rules): which request a reconnect sends, which events are new, how long to
 * wait after a drop, when to give up. `SkillStream` only moves bytes and sleeps.
 *
 * - An event is a repeat only when its *own* `id:` line names a sequence number
 *   already delivered; an event without an `id:` line keeps the previous last
 *   event ID (WHATWG HTML 9.2.6) and is new.
 * - An event of a type the generated types do not know arrives as an
 *   `UnknownEvent` (`strict`: a `StreamError`); data that is not a JSON object
 *   with a string `type` is no event at all and always a `StreamError`.
 * - After a drop: a connection error, 429, 502, 503 or 504 is retried after the
 *   server's `Retry-After` (a longer one than `maxRetryAfterMs` gives up) or a
 *   backoff based on its `retry:`; `maxRetries` failures in a row give up.
 */
import { APIConnectionError, StreamError } from './errors.js';
import { backoffMs, isRetryableStatus, retryAfterMs } from './core.js';
import type { ServerSentEvent } from './sse.js';
import type { DoneEvent, EventType, ExecuteResult, StreamEvent, UnknownEvent } from './types.js';

// Every event type of the contract; `satisfies` fails the build when the
// generated union gains or loses one and this list does not follow.
const KNOWN: ReadonlySet<string> = new Set(
  Object.keys({
    skill_start: true,
    step_start: true,
    step_completed: true,
    step_skipped: true,
    step_degraded: true,
    step_failed: true,
    step_retrying: true,
    step_fallback: true,
    gate_warning: true,
    skill_completed: true,
    skill_resumed: true,
    step_waiting: true,
    step_delta: true,
    done: true,
  } satisfies Record<EventType, true>),
);

export interface ResumeInit {
  runId?: string | undefined;
  lastEventId?: string | undefined;
  maxRetries: number;
  maxRetryAfterMs: number;
  strict?: boolean;
}

export class ResumeState {
  /** The run being followed: from the `X-Run-Id` header or the first event. */
  runId: string | undefined;
  /** The SSE id of the last event delivered (the resume cursor). */
  lastEventId: string | undefined;
  /** The `done` payload (without `type` and `message`), once it has arrived. */
  result: ExecuteResult | undefined;
  /** Failed reconnects in a row; every new event resets it. */
  failures = 0;
  /** The server's `retry:` in ms, the base of the backoff. */
  serverRetryMs: number | undefined;
  readonly maxRetries: number;
  readonly maxRetryAfterMs: number;
  readonly strict: boolean;
  #lastSeq: number | undefined;

  constructor(init: ResumeInit) {
    this.runId = init.runId;
    this.lastEventId = init.lastEventId;
    this.maxRetries = init.maxRetries;
    this.maxRetryAfterMs = init.maxRetryAfterMs;
    this.strict = init.strict ?? false;
    this.#lastSeq = seqOf(init.lastEventId);
  }

  /** True once `done` has arrived: nothing after it is delivered. */
  get finished(): boolean {
    return this.result !== undefined;
  }

  /** The request that resumes the run: its path and the `Last-Event-ID` header, if any. */
  resumeRequest(): { path: string; headers: Record<string, string> } {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.lastEventId !== undefined) headers['last-event-id'] = this.lastEventId;
    return { path: `/v1/runs/${encodeURIComponent(this.runId ?? '')}/events`, headers };
  }

  /** A connection opened: its `X-Run-Id` names the run. */
  onConnect(headers: Headers): void {
    this.runId ??= headers.get('x-run-id') ?? undefined;
  }

  /** The server's `retry:` (from the decoder). */
  onRetry(ms: number | undefined): void {
    if (ms !== undefined) this.serverRetryMs = ms;
  }

  /** The event `message` carries, or `undefined` when it is a repeat (or comes after `done`). */
  accept(message: ServerSentEvent): StreamEvent | undefined {
    const seq = message.hasId ? seqOf(message.id) : undefined;
    if (this.finished || (seq !== undefined && this.#lastSeq !== undefined && seq <= this.#lastSeq)) {
      return undefined; // delivered before the connection dropped
    }
    const event = this.#read(message);
    if (seq !== undefined) this.#lastSeq = seq;
    if (message.id) this.lastEventId = message.id;
    if (typeof event.run_id === 'string') this.runId ??= event.run_id;
    this.failures = 0;
    if (event.type === 'done') {
      const { type: _type, message: _message, ...result } = event as DoneEvent;
      this.result = result;
    }
    return event;
  }

  #read(message: ServerSentEvent): StreamEvent {
    let raw: unknown;
    try {
      raw = JSON.parse(message.data);
    } catch (err) {
      throw new StreamError(`event ${message.id ?? '?'} is not JSON`, this, err);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || typeof (raw as { type?: unknown }).type !== 'string') {
      throw new StreamError(`event ${message.id ?? '?'} has no type`, this);
    }
    const event = raw as Record<string, unknown> & { type: string };
    if (KNOWN.has(event.type)) return event as unknown as StreamEvent;
    if (this.strict) throw new StreamError(`event ${message.id ?? '?'} has a type this client does not know: ${event.type}`, this);
    return unknownEvent(event);
  }

  /**
   * Ms to wait before the next reconnect after `cause` (a drop, or a failed
   * reconnect), or throws the `StreamError` that ends the stream.
   */
  nextDelay(cause: unknown): number {
    if (this.runId === undefined) throw new StreamError('the stream dropped before its run id was known', this, cause);
    if (!(cause instanceof APIConnectionError) && !isRetryableStatus(cause)) {
      throw new StreamError('resuming the stream failed', this, cause);
    }
    if (this.failures >= this.maxRetries) {
      throw new StreamError(`gave up after ${this.failures} reconnects in a row`, this, cause);
    }
    const asked = retryAfterMs(cause);
    if (asked !== undefined && asked > this.maxRetryAfterMs) {
      throw new StreamError(`the server asked to wait ${asked} ms, longer than maxRetryAfterMs (${this.maxRetryAfterMs})`, this, cause);
    }
    const attempt = this.failures++;
    return asked ?? backoffMs(attempt, this.serverRetryMs);
  }
}

function unknownEvent(event: Record<string, unknown> & { type: string }): UnknownEvent {
  return {
    type: 'unknown',
    event_type: event.type,
    message: typeof event.message === 'string' ? event.message : '',
    data: event.data ?? null,
    run_id: typeof event.run_id === 'string' ? event.run_id : undefined,
    raw: event,
  };
}

/** An SSE id as the run's sequence number, when it is one. */
function seqOf(id: string | undefined): number | undefined {
  return id !== undefined && /^[0-9]+$/.test(id) ? Number(id) : undefined;
}
