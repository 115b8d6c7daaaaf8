/** The contract's types, as the JS client generates them (nothing restated here). */
import type { components } from '../../clients/js/src/generated/schema.js';
export type { SkillDescription, StreamEvent, SkillEvent, RunStatus, RunSummary, DoneEvent } from '../../clients/js/src/index.js';
export {
  createClient,
  AuthenticationError,
  ValidationError,
  NotFoundError,
  ConflictError,
  APIError,
  APIConnectionError,
  StreamError,
} from '../../clients/js/src/index.js';
export type { Client } from '../../clients/js/src/index.js';

type Schemas = components['schemas'];
export type SkillStep = Schemas['SkillStep'];
export type StepPlace = Schemas['StepPlace'];
export type StepStatus = Schemas['StepStatus'];
