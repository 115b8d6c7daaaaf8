// Compiled with `tsc --noEmit` by test/contract.test.js: the type-level API.
// Lines marked @ts-expect-error must fail to compile, or the check fails.
import {
  createClient,
  type Client,
  type EventOf,
  type ExecuteResult,
  type Run,
  type StepRetryingEvent,
  APIError,
  RateLimitError,
  StreamError,
  ValidationError,
} from 'skillrun-client';

declare const signal: AbortSignal;

export async function usage(): Promise<void> {
  const client: Client = createClient({ baseUrl: 'http://127.0.0.1:8080', apiKey: 'k' });
  createClient({ baseUrl: 'x', apiKey: 'k', fetch: globalThis.fetch, maxRetries: 2, idleTimeoutMs: 1000, headers: { a: 'b' } });
  // @ts-expect-error apiKey is required
  createClient({ baseUrl: 'x' });
  // @ts-expect-error exactOptionalPropertyTypes: undefined is not a number
  createClient({ baseUrl: 'x', apiKey: 'k', maxRetries: undefined });

  const stream = client.stream('text.summarize', { inputs: { text: 'hi' }, options: { timeout_ms: 1000 } }, { signal });
  for await (const event of stream) {
    switch (event.type) {
      case 'skill_start': {
        const steps: string[] = event.data.steps;
        void steps;
        break;
      }
      case 'step_failed': {
        const kind: string = event.data.error.kind;
        void kind;
        // @ts-expect-error a failed step has no produced_output
        void event.data.produced_output;
        break;
      }
      case 'step_degraded':
        void event.data.findings[0]?.count;
        break;
      case 'step_waiting': {
        const prompt: string = event.data.prompt;
        void [prompt, event.data.schema, event.data.answer_url];
        break;
      }
      case 'step_retrying': {
        const attempt: number = event.data.attempt;
        void attempt;
        break;
      }
      case 'done': {
        const status: 'queued' | 'running' | 'waiting' | 'completed' | 'failed' | 'cancelled' | 'interrupted' = event.status;
        void status;
        const doneMessage: string = event.message; // every event has a message, done too
        void doneMessage;
        break;
      }
      case 'unknown': {
        // A type newer than this client: its own type, message and the raw event.
        const serverType: string = event.event_type;
        const raw: Record<string, unknown> = event.raw;
        void serverType, raw;
        break;
      }
      default: {
        const message: string = event.message;
        void message;
      }
    }
    // @ts-expect-error not an event type
    if (event.type === 'step_exploded') break;
  }
  const result: ExecuteResult = await stream.result();
  for await (const chunk of client.runs.events('r').text('answer', { index: 0 })) {
    const shown: string = chunk.restart ? '' : chunk.text;
    const where: [string, number | undefined, number] = [chunk.stepId, chunk.index, chunk.attempt];
    void shown;
    void where;
  }
  const finalText: string | null = await client.runs.events('r').finalText('answer');
  void finalText;
  // @ts-expect-error finalText needs the step
  void client.runs.events('r').finalText();
  void result.outputs['summary'];
  // @ts-expect-error the result has no type field
  void result.type;

  const retrying: StepRetryingEvent['type'] = 'step_retrying';
  void retrying;
  const kind: EventOf<'step_failed'>['data']['error']['kind'] = 'timeout';
  void kind;
  // @ts-expect-error not an event type
  type Nope = EventOf<'step_exploded'>['data'];

  await client.execute('text.summarize', { inputs: { text: 'x' } }, { idempotencyKey: 'k1', traceId: 't' });
  // @ts-expect-error inputs are required
  await client.execute('text.summarize', {});
  // @ts-expect-error unknown option
  await client.execute('text.summarize', { inputs: {}, options: { nope: 1 } });
  const accepted: Run = await client.executeAsync('demo.ticker', { inputs: { steps: 3 } });
  const run: Run = await client.runs.get(accepted.run_id);
  void run.result?.status;
  const page = await client.runs.list({ status: 'completed', limit: 10 });
  void page.next_cursor;
  // @ts-expect-error not a run status
  await client.runs.list({ status: 'exploded' });
  await client.runs.cancel(run.run_id);
  const answered: Run = await client.runs.input(run.run_id, 'ask', { approve: true });
  void answered;
  for await (const e of client.runs.events(run.run_id, { after: 3 })) void e.type;
  const skills = await client.skills.list();
  void skills.skills[0]?.id;
  // @ts-expect-error a list answers its body, as runs.list does, not a bare array
  void skills[0];
  void (await client.skills.get('demo.ticker')).inputs;

  try {
    await client.execute('x', { inputs: {} });
  } catch (err) {
    if (err instanceof ValidationError) void err.errors[0]?.field;
    if (err instanceof RateLimitError) {
      const after: number | undefined = err.retryAfter;
      void after;
    }
    if (err instanceof APIError) void (err.status, err.problem?.detail);
    if (err instanceof StreamError) void (err.runId, err.lastEventId);
  }
}
