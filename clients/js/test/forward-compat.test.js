// Issue 13 §5: the client reads every valid stream, agrees with the Python
// client on its defaults, and keeps its resume rules in a sans-IO core.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import yaml from 'js-yaml';
import { RateLimitError, StreamError, ValidationError, createClient } from '../dist/index.js';
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
