// The stream's sans-IO core (src/resume.ts): the same rules as the Python
// client's ResumeState, checked without sockets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { APIConnectionError, RateLimitError } from '../dist/index.js';
import { ResumeState } from '../dist/resume.js';

const TS = '2026-01-01T00:00:00Z';
const envelope = (type, data, step_id = null) => ({ type, message: type, timestamp: TS, step_id, trace_id: 't', run_id: 'run_x', data });
const EVENTS = [
  envelope('skill_start', { skill_id: 's', version: '1', execution_channel: 'http-stream', steps: ['a'] }),
  envelope('step_start', { uses: 'util.sleep' }, 'a'),
  envelope('step_completed', { produced_output: {}, duration_ms: 1 }, 'a'),
  envelope('skill_completed', { status: 'completed', duration_ms: 2 }),
  { type: 'done', message: 'done', skill_id: 's', status: 'completed', outputs: {}, trace_id: 't', run_id: 'run_x', duration_ms: 2, steps: [] },
];

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
