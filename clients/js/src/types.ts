/**
 * Names for the generated contract types (`./generated/schema.ts`, made by
 * `npm run generate` from `openapi/skillrun.yaml`). Nothing here restates a shape.
 */
import type { components, operations } from './generated/schema.js';

type Schemas = components['schemas'];

/** One event of a run; `switch (event.type)` narrows it. */
export type SkillEvent = Schemas['SkillEvent'];
/** The event names: `skill_start`, `step_start` … `done`. */
export type EventType = SkillEvent['type'];
/** The event type whose `type` is `T`, e.g. `EventOf<'step_failed'>`. */
export type EventOf<T extends EventType> = Extract<SkillEvent, { type: T }>;

/** The first event of a run; `data.steps` lists its steps. */
export type SkillStartEvent = Schemas['SkillStartEvent'];
/** A step (or one `foreach` item, `data.index`) starts. */
export type StepStartEvent = Schemas['StepStartEvent'];
/** A step finished; `data.produced_output` is what it made. */
export type StepCompletedEvent = Schemas['StepCompletedEvent'];
/** A step did not run (`data.reason`): its condition was false, a gate skipped it, or the run ended first. */
export type StepSkippedEvent = Schemas['StepSkippedEvent'];
/** A safety gate changed a step's output (`data.findings`, e.g. an e-mail address redacted). */
export type StepDegradedEvent = Schemas['StepDegradedEvent'];
/** A step failed; `data.error` says how. */
export type StepFailedEvent = Schemas['StepFailedEvent'];
/** A failed attempt of a step with `retry`; another follows after `data.delay_ms`. */
export type StepRetryingEvent = Schemas['StepRetryingEvent'];
/** A step failed for good and its `on_error.fallback` capability (`data.uses`) runs instead. */
export type StepFallbackEvent = Schemas['StepFallbackEvent'];
/** A gate with policy `warn` found something (`data.findings`); the value is kept. */
export type GateWarningEvent = Schemas['GateWarningEvent'];
/** The skill finished (completed or failed); `done` follows. */
export type SkillCompletedEvent = Schemas['SkillCompletedEvent'];
/** The run goes on from its log after a server restart: the seam between the two lives. */
export type SkillResumedEvent = Schemas['SkillResumedEvent'];
/** A `human.input` step waits for an answer (`data.prompt`, `data.schema`); the run is `waiting` until `runs.input` answers it. */
export type StepWaitingEvent = Schemas['StepWaitingEvent'];
/** Partial output of a running step (`data.delta.text`, `data.delta.progress`) in `data.sequence` order per `data.attempt`. */
export type StepDeltaEvent = Schemas['StepDeltaEvent'];
/** The last event: the run's result (what `/execute` answers) plus `type: 'done'` and a `message`. */
export type DoneEvent = Schemas['DoneEvent'];

/** What `/execute` answers and what `stream.result()` resolves to (the `done` payload). */
export type ExecuteResult = Schemas['ExecuteResult'];
/** Per-run options of the execute calls (`timeout_ms`, `on_disconnect` …). */
export type ExecuteOptions = Schemas['ExecuteOptions'];
/** The body of the execute endpoints. */
export type ExecuteRequest = Schemas['ExecuteRequest'];
/** `queued`, `running`, `waiting` (a step waits for input), `completed`, `failed`, `cancelled` or `interrupted`. */
export type RunStatus = Schemas['RunStatus'];
/** One step in a result's `steps`: its id and how it ended. */
export type StepSummary = Schemas['StepSummary'];
/** Why a step failed (`kind`, `message`). */
export type StepError = Schemas['StepError'];
/** An `application/problem+json` body (RFC 9457): `APIError.problem`. */
export type Problem = Schemas['Problem'];
/** One failing field of a 422: `{field, message}`. */
export type FieldError = Schemas['FieldError'];
/** A skill as `skills.list` shows it. */
export type SkillSummary = Schemas['SkillSummary'];
/** A skill with its inputs and outputs schemas (`skills.get`). */
export type SkillDescription = Schemas['SkillDescription'];
/** The body of `GET /v1/skills`; `skills.list` answers its `skills`. */
export type SkillList = Schemas['SkillList'];

/** A run; `result` is present once it has ended. */
export type Run = Schemas['Run'];
/** A run as `runs.list` shows it (without inputs and result). */
export type RunSummary = Schemas['RunSummary'];
/** What `executeAsync` answers (202): the new run, `status: 'queued'`. */
export type RunAccepted = Schemas['Run'];
/** One page of `runs.list`: `runs`, and `next_cursor` when there are more. */
export type RunList = Schemas['RunList'];
/** The filters of `runs.list`: `status`, `skill_id`, `limit`, `cursor`. */
export type RunListParams = NonNullable<operations['list_runs']['parameters']['query']>;

/**
 * An event this client does not know: a type newer than its generated types.
 * It arrives in its place, in order, so an older client keeps working against a
 * newer server (`strict: true` makes it a `StreamError` instead, for tests).
 * `type` is always `'unknown'`, so `switch (event.type)` still narrows every
 * event; the server's own type is `event_type`, the whole event as sent `raw`.
 */
export interface UnknownEvent {
  /** Always `'unknown'`: see `event_type` for the server's type. */
  type: 'unknown';
  /** The event's `type` as the server sent it, e.g. `step_paused`. */
  event_type: string;
  /** The event's human-readable `message` (empty when it had none). */
  message: string;
  /** The event's `data` member as sent (`null` when it had none). */
  data: unknown;
  /** The run, when the event named it. */
  run_id: string | undefined;
  /** The whole event object as sent. */
  raw: Record<string, unknown>;
}

/** What a stream yields: an event of the contract, or an `UnknownEvent`. */
export type StreamEvent = SkillEvent | UnknownEvent;
