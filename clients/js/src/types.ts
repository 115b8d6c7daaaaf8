/**
 * Names for the generated contract types (`./generated/schema.ts`, made by
 * `npm run generate` from `openapi/skillrun.yaml`). Nothing here restates a shape.
 */
import type { components, operations } from './generated/schema.js';

type Schemas = components['schemas'];

/** One event of a run; `switch (event.type)` narrows it. */
export type SkillEvent = Schemas['SkillEvent'];
export type EventType = SkillEvent['type'];
/** The event type whose `type` is `T`, e.g. `EventOf<'step_failed'>`. */
export type EventOf<T extends EventType> = Extract<SkillEvent, { type: T }>;

export type SkillStartEvent = Schemas['SkillStartEvent'];
export type StepStartEvent = Schemas['StepStartEvent'];
export type StepCompletedEvent = Schemas['StepCompletedEvent'];
export type StepSkippedEvent = Schemas['StepSkippedEvent'];
export type StepDegradedEvent = Schemas['StepDegradedEvent'];
export type StepFailedEvent = Schemas['StepFailedEvent'];
export type SkillCompletedEvent = Schemas['SkillCompletedEvent'];
export type DoneEvent = Schemas['DoneEvent'];

/** What `/execute` answers and what `stream.result()` resolves to (the `done` payload). */
export type ExecuteResult = Schemas['ExecuteResult'];
export type ExecuteOptions = Schemas['ExecuteOptions'];
export type ExecuteRequest = Schemas['ExecuteRequest'];
export type RunStatus = Schemas['RunStatus'];
export type StepSummary = Schemas['StepSummary'];
export type StepError = Schemas['StepError'];
export type Problem = Schemas['Problem'];
export type FieldError = Schemas['FieldError'];
export type SkillSummary = Schemas['SkillSummary'];
export type SkillDescription = Schemas['SkillDescription'];
export type SkillList = Schemas['SkillList'];

/** A run; `result` is present once it has ended. */
export type Run = Schemas['Run'];
/** A run as `runs.list` shows it (without inputs and result). */
export type RunSummary = Schemas['RunSummary'];
/** What `executeAsync` answers (202): the new run, `status: 'queued'`. */
export type RunAccepted = Schemas['Run'];
export type RunList = Schemas['RunList'];
export type RunListParams = NonNullable<operations['list_runs']['parameters']['query']>;
