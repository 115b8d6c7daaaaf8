// Issue 13 §5: the client reads every valid stream, agrees with the Python
// client on its defaults, and keeps its resume rules in a sans-IO core.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import yaml from 'js-yaml';
import { APIConnectionError, RateLimitError, StreamError, ValidationError, createClient } from '../dist/index.js';
import { ResumeState } from '../dist/resume.js';
import { Core } from '../dist/core.js';
import { PKG, ROOT } from './helpers.js';

const enc = new TextEncoder();
const TS = '2026-01-01T00:00:00Z';
const envelope = (type, data, step_id = null) => ({ type, message: type, timestamp: TS, step_id, trace_id: 't', run_id: 'run_x', data });
const EVENTS = [
  envelope('skill_start', { skill_id: 's', version: '1', execution_channel: 'http-stream', steps: ['a'] }),
  envelope('step_start', { uses: 'util.sleep' }, 'a'),
  envelope('step_completed', { produced_output: {}, duration_ms: 1 }, 'a'),
  envelope('skill_completed', { status: 'completed', duration_ms: 2 }),
  { type: 'done', message: 'done', skill_id: 's', status: 'completed', outputs: {}, trace_id: 't', run_id: 'run_x', duration_ms: 2, steps: [] },
];
const frame = (event, id) => `${id === undefined ? '' : `id: ${id}\n`}event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;

/** A `fetch` whose n-th call answers `answers[n]`: a string streamed as SSE, or a Response. */
function scripted(answers) {
  const requests = [];
  const fetch = async (url, init) => {
    requests.push({ url, headers: init.headers });
    const a = answers[Math.min(requests.length - 1, answers.length - 1)];
    if (a instanceof Response) return a;
    return new Response(new ReadableStream({ start: (c) => { c.enqueue(enc.encode(a)); c.close(); } }), {
      headers: { 'content-type': 'text/event-stream', 'x-run-id': 'run_x' },
    });
  };
  return { fetch, requests };
}

const client = (fetch, extra = {}) => createClient({ baseUrl: 'http://x', apiKey: 'k', fetch, ...extra });
async function collect(stream) {
  const out = [];
  for await (const e of stream) out.push(e);
  return out;
}

test('an event without its own id after one with an id is delivered (it keeps the previous last event ID)', async () => {
  const text = frame(EVENTS[0], 1) + frame(EVENTS[1], 2) + frame(EVENTS[2]) + frame(EVENTS[3], 3) + frame(EVENTS[4], 4);
  const { fetch } = scripted([text]);
  const stream = client(fetch).stream('s', { inputs: {} });
  const got = await collect(stream);
  assert.deepEqual(got.map((e) => e.type), EVENTS.map((e) => e.type));
  assert.equal(stream.lastEventId, '4');
});

test('after a resume only an event whose own id was delivered is a repeat', async () => {
  const first = frame(EVENTS[0], 1) + frame(EVENTS[1], 2);
  const again = frame(EVENTS[0], 1) + frame(EVENTS[1], 2) + frame(EVENTS[2]) + frame(EVENTS[3], 3) + frame(EVENTS[4], 4);
  const { fetch, requests } = scripted([first, again]);
  const got = await collect(client(fetch).stream('s', { inputs: {} }));
  assert.deepEqual(got.map((e) => e.type), EVENTS.map((e) => e.type));
  assert.equal(requests[1].headers['last-event-id'], '2');
});

test('an event of an unknown type arrives as a typed UnknownEvent with its type, message and raw data', async () => {
  const future = envelope('step_teleported', { to: 'mars' }, 'a');
  const text = frame(EVENTS[0], 1) + frame(future, 2) + EVENTS.slice(1).map((e, i) => frame(e, i + 3)).join('');
  const got = await collect(client(scripted([text]).fetch).stream('s', { inputs: {} }));
  assert.deepEqual(got.map((e) => e.type), ['skill_start', 'unknown', ...EVENTS.slice(1).map((e) => e.type)]);
  const u = got[1];
  assert.deepEqual([u.event_type, u.message, u.data, u.run_id], ['step_teleported', 'step_teleported', { to: 'mars' }, 'run_x']);
  assert.deepEqual(u.raw, future);
});

test('strict: an unknown type is a StreamError', async () => {
  const text = frame(EVENTS[0], 1) + frame(envelope('step_teleported', {}), 2);
  const err = await collect(client(scripted([text]).fetch, { strict: true }).stream('s', { inputs: {} })).catch((e) => e);
  assert.ok(err instanceof StreamError, String(err));
  assert.match(err.message, /does not know: step_teleported/);
  assert.equal(err.lastEventId, '1');
});

for (const [name, data] of [['text', 'not json'], ['array', '["a"]'], ['untyped', '{"message":"x"}']]) {
  test(`a frame that is no event (${name}) is a StreamError`, async () => {
    const text = frame(EVENTS[0], 1) + `id: 2\ndata: ${data}\n\n`;
    const err = await collect(client(scripted([text]).fetch).stream('s', { inputs: {} })).catch((e) => e);
    assert.ok(err instanceof StreamError, String(err));
  });
}

test('a 422 message names each field error once', async () => {
  const said = 'inputs.steps: 0 is less than the minimum of 1';
  const body = JSON.stringify({ title: 'Unprocessable Entity', status: 422, detail: said,
    errors: [{ field: 'inputs.steps', message: '0 is less than the minimum of 1' }, { field: 'inputs.text', message: 'required' }] });
  const answer = new Response(body, { status: 422, headers: { 'content-type': 'application/problem+json' } });
  const err = await client(scripted([answer]).fetch).execute('s', { inputs: {} }).catch((e) => e);
  assert.ok(err instanceof ValidationError);
  assert.equal(err.message, `422 Unprocessable Entity: ${said} (inputs.text: required)`);
});

test('a Retry-After longer than maxRetryAfterMs is not waited for', async () => {
  const answer = new Response('{"title":"x","status":429}', { status: 429, headers: { 'retry-after': '3600' } });
  const { fetch, requests } = scripted([answer]);
  const started = Date.now();
  const err = await client(fetch).skills.list().catch((e) => e);
  assert.ok(err instanceof RateLimitError && err.retryAfter === 3600);
  assert.equal(requests.length, 1);
  assert.ok(Date.now() - started < 5000);
});

test('the defaults are the spec table info.x-skillrun-client-defaults (the Python client checks its side)', () => {
  const table = yaml.load(readFileSync(join(ROOT, 'openapi', 'skillrun.yaml'), 'utf8')).info['x-skillrun-client-defaults'];
  const core = new Core({ baseUrl: 'http://x', apiKey: 'k', fetch: async () => new Response('') });
  assert.equal(core.maxRetries, table.max_retries);
  assert.equal(core.idleTimeoutMs, table.idle_timeout_ms);
  assert.equal(core.maxRetryAfterMs, table.max_retry_after_s * 1000);
  const out = join(mkdtempSync(join(tmpdir(), 'skillrun-defaults-')), 'defaults.ts');
  execFileSync(process.execPath, [join(PKG, 'scripts', 'generate-defaults.mjs'), '--output', out]);
  assert.equal(readFileSync(out, 'utf8'), readFileSync(join(PKG, 'src', 'generated', 'defaults.ts'), 'utf8'), 'stale: npm run generate');
  const src = readFileSync(join(PKG, 'src', 'core.ts'), 'utf8');
  for (const key of ['backoff_initial_ms', 'backoff_max_ms', 'backoff_multiplier', 'backoff_jitter']) {
    assert.ok(src.includes(`CLIENT_DEFAULTS.${key}`), `core.ts does not take ${key} from the table`);
  }
});

// The sans-IO core: the same rules as the Python client's ResumeState, no sockets.
const sse = (data, id, hasId = id !== undefined) => ({ event: 'message', data: JSON.stringify(data), id, hasId });
const state = (extra = {}) => new ResumeState({ maxRetries: 2, maxRetryAfterMs: 60_000, ...extra });

test('ResumeState: repeats are events whose own id was delivered; id-less events are new', () => {
  const s = state({ runId: 'run_x', lastEventId: '2' });
  assert.equal(s.accept(sse(EVENTS[0], '1')), undefined);
  assert.equal(s.accept(sse(EVENTS[1], '2')), undefined);
  assert.equal(s.accept(sse(EVENTS[2], '2', false)).type, 'step_completed');
  assert.equal(s.accept(sse(EVENTS[3], '3')).type, 'skill_completed');
  assert.equal(s.lastEventId, '3');
  assert.equal(s.accept(sse(EVENTS[4], '4')).type, 'done');
  assert.equal(s.result.status, 'completed');
  assert.equal(s.accept(sse(EVENTS[0], '9')), undefined, 'nothing after done');
});

test('ResumeState: the resume request, the run id, and the wait after a drop', () => {
  const s = state();
  assert.throws(() => s.nextDelay(new APIConnectionError('x')), /before its run id was known/);
  s.onConnect(new Headers({ 'x-run-id': 'run/1' }));
  s.accept(sse(EVENTS[0], '5'));
  assert.deepEqual(s.resumeRequest(), { path: '/v1/runs/run%2F1/events', headers: { accept: 'text/event-stream', 'last-event-id': '5' } });
  s.onRetry(1000);
  const first = s.nextDelay(new APIConnectionError('x'));
  assert.ok(first >= 1000 && first <= 1250, String(first));
  const second = s.nextDelay(new APIConnectionError('x'));
  assert.ok(second >= 2000 && second <= 2500, String(second));
  assert.throws(() => s.nextDelay(new APIConnectionError('x')), /gave up after 2 reconnects/);
  s.accept(sse(EVENTS[1], '6'));
  assert.equal(s.failures, 0, 'a new event resets the budget');
});

test('ResumeState: a refused resume, and a Retry-After over the cap, end the stream', () => {
  const s = state({ runId: 'run_x' });
  const answer = (status, after) => ({ status, headers: new Headers(after ? { 'retry-after': String(after) } : {}) });
  const err = (status, after) => Object.assign(Object.create(RateLimitError.prototype), answer(status, after));
  assert.throws(() => s.nextDelay(err(404)), /resuming the stream failed/);
  assert.equal(s.nextDelay(err(503, 2)), 2000);
  assert.throws(() => s.nextDelay(err(503, 61)), /longer than maxRetryAfterMs/);
});
