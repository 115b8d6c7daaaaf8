/** `createClient`: the resources over `Core`, and the streams. */
import { type ClientOptions, Core, type RequestOptions } from './core.js';
import { SkillStream } from './stream.js';
import type {
  ExecuteOptions,
  ExecuteResult,
  Run,
  RunAccepted,
  RunList,
  RunListParams,
  SkillDescription,
  SkillList,
} from './types.js';

/** The body of every execute call; `I` is the skill's inputs type (see `SkillMap`). */
export interface ExecuteBody<I = Record<string, unknown>> {
  /** The skill's inputs; their schema is the skill's (see `skills.get`). */
  inputs: I;
  /** Per-run options (`timeout_ms`, `on_disconnect` …), as the contract's `ExecuteOptions`. */
  options?: ExecuteOptions;
}

/**
 * Each skill id with its inputs and outputs types. `npx skillrun-client codegen URL`
 * writes one for the skills a server serves; `createClient<Skills>(…)` then types
 * `stream`, `execute` and `executeAsync` by skill.
 */
export type SkillMap = Record<string, { inputs: unknown; outputs: unknown }>;

/** Any skill: inputs and outputs are plain JSON objects. The default `SkillMap`. */
export type AnySkills = Record<string, { inputs: Record<string, unknown>; outputs: Record<string, unknown> }>;

/** A result whose `outputs` has the skill's outputs type. */
export type TypedResult<O> = Omit<ExecuteResult, 'outputs'> & { outputs: O };

/** Options of the calls that start a run. */
export interface RunOptions extends RequestOptions {
  /**
   * Makes starting the run safe to retry: a repeat with the same key and body
   * returns the same run. Generated per call when absent.
   */
  idempotencyKey?: string;
  /** Sent as `x-trace-id`; echoed in every event and the result. */
  traceId?: string;
}

/** Options of `runs.events`. */
export interface EventsOptions extends RequestOptions {
  /** Deliver only events after this id (the SSE id of the last event seen). */
  after?: string | number;
}

/**
 * What `createClient` returns: the calls of the API, grouped as its tags are.
 * `S` types the execute calls by skill (see `SkillMap`).
 */
export interface Client<S extends SkillMap = AnySkills> {
  /**
   * Run a skill and stream its events. Nothing is sent until the stream is
   * iterated or `result()` is called.
   */
  stream<K extends keyof S & string>(skillId: K, body: ExecuteBody<S[K]['inputs']>, options?: RunOptions): SkillStream<S[K]['outputs']>;
  /** Run a skill and wait for its result (a failed run is a result too, `status: 'failed'`). */
  execute<K extends keyof S & string>(skillId: K, body: ExecuteBody<S[K]['inputs']>, options?: RunOptions): Promise<TypedResult<S[K]['outputs']>>;
  /** Start a run in the background; follow it with `runs.events` or poll `runs.get`. */
  executeAsync<K extends keyof S & string>(skillId: K, body: ExecuteBody<S[K]['inputs']>, options?: RunOptions): Promise<RunAccepted>;
  /** The runs this API key started. */
  runs: {
    /** One run (`result` once it has ended); `NotFoundError` for a run this key cannot see. */
    get(runId: string, options?: RequestOptions): Promise<Run>;
    /** Runs newest first, filtered by `status` and `skill_id`; pass `next_cursor` as `cursor` for the next page. */
    list(params?: RunListParams, options?: RequestOptions): Promise<RunList>;
    /** Ask a run to stop (it ends `cancelled`); `ConflictError` when it has already ended. */
    cancel(runId: string, options?: RequestOptions): Promise<Run>;
    /**
     * Answer the step waiting for input (`StepWaitingEvent`): `stepId` as the event
     * gave it, `index` for a `foreach` item. `ValidationError` (422) when `value`
     * breaks the event's `schema`; `ConflictError` (409) when that step does not wait.
     */
    input(runId: string, stepId: string, value: unknown, index?: number, options?: RequestOptions): Promise<Run>;
    /** A run's events (replayed, then live until `done`), healing like `stream`. */
    events(runId: string, options?: EventsOptions): SkillStream;
  };
  /** The skills the server has loaded. */
  skills: {
    /** Every loaded skill, sorted by id, in `skills` (the body, as `runs.list` answers its page). */
    list(options?: RequestOptions): Promise<SkillList>;
    /** One skill with its inputs and outputs schemas; `NotFoundError` when not loaded. */
    get(skillId: string, options?: RequestOptions): Promise<SkillDescription>;
  };
}

/**
 * A client for one server and API key. Every request sends `x-api-key`;
 * runs are started with a generated `Idempotency-Key`, so retries are safe.
 */
export function createClient<S extends SkillMap = AnySkills>(options: ClientOptions): Client<S> {
  const core = new Core(options);
  const skillPath = (skillId: string, suffix: string): string => `/v1/skills/${encodeURIComponent(skillId)}${suffix}`;
  const runPath = (runId: string, suffix = ''): string => `/v1/runs/${encodeURIComponent(runId)}${suffix}`;

  function startHeaders(options: RunOptions | undefined, accept: string): Record<string, string> {
    const headers: Record<string, string> = {
      ...options?.headers,
      accept,
      'idempotency-key': options?.idempotencyKey ?? newKey(),
    };
    if (options?.traceId !== undefined) headers['x-trace-id'] = options.traceId;
    return headers;
  }

  function start(skillId: string, suffix: string, body: ExecuteBody<unknown>, options: RunOptions | undefined, accept: string) {
    return {
      method: 'POST' as const,
      path: skillPath(skillId, suffix),
      body,
      // One key for every retry of this call: the server starts the run once.
      headers: startHeaders(options, accept),
      ...(options?.signal ? { signal: options.signal } : {}),
    };
  }

  function plain(options: RequestOptions | undefined) {
    return {
      ...(options?.signal ? { signal: options.signal } : {}),
      ...(options?.headers ? { headers: options.headers } : {}),
      headersTimeout: true,
    };
  }

  return {
    stream(skillId, body, options) {
      const request = start(skillId, '/execute/stream', body, options, 'text/event-stream');
      // `never` outputs: the runtime result is the server's; the caller's `S` names its type.
      return new SkillStream<never>(core, (signal) => core.send({ ...request, signal, headersTimeout: true }), {
        signal: options?.signal,
        headers: options?.headers,
      });
    },
    execute(skillId, body, options) {
      // No headers timeout: /execute answers when the run ends, however long it takes.
      return core.json<TypedResult<never>>(start(skillId, '/execute', body, options, 'application/json'));
    },
    executeAsync(skillId, body, options) {
      return core.json<RunAccepted>({
        ...start(skillId, '/execute/async', body, options, 'application/json'),
        headersTimeout: true,
      });
    },
    runs: {
      get: (runId, options) => core.json<Run>({ method: 'GET', path: runPath(runId), ...plain(options) }),
      list: (params, options) =>
        core.json<RunList>({ method: 'GET', path: '/v1/runs', query: { ...params }, ...plain(options) }),
      cancel: (runId, options) =>
        core.json<Run>({ method: 'POST', path: runPath(runId, '/cancel'), ...plain(options) }),
      input: (runId, stepId, value, index, options) =>
        core.json<Run>({
          method: 'POST',
          path: runPath(runId, '/input'),
          body: index === undefined ? { step_id: stepId, value } : { step_id: stepId, value, index },
          ...plain(options),
        }),
      events(runId, options) {
        return new SkillStream(core, undefined, {
          signal: options?.signal,
          runId,
          lastEventId: options?.after === undefined ? undefined : String(options.after),
          headers: options?.headers,
        });
      },
    },
    skills: {
      list: (options) => core.json<SkillList>({ method: 'GET', path: '/v1/skills', ...plain(options) }),
      get: (skillId, options) =>
        core.json<SkillDescription>({ method: 'GET', path: skillPath(skillId, ''), ...plain(options) }),
    },
  };
}

/** A random UUID v4, also where `crypto.randomUUID` is missing (Node 18 flags, insecure origins). */
function newKey(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  const b = new Uint8Array(16);
  if (typeof c?.getRandomValues === 'function') c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
