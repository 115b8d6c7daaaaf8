// Streams against a real server: order and types, result(), break, abort, execute, skills.
import assert from 'node:assert/strict';
import { after as afterTest, before, test } from 'node:test';
import { createClient, SkillrunError } from '../dist/index.js';
import { API_KEY, checkOrder, startProxy, startServer } from './helpers.js';

let server;
let client;
before(async () => {
  server = await startServer();
  client = createClient({ baseUrl: server.url, apiKey: API_KEY });
});
afterTest(() => server?.stop());

const SHOWCASE = { inputs: { text: 'Write to ann@example.org today. It works. Cats purr.', detailed: true } };

test('stream yields the events in order, typed by type, with increasing ids', async () => {
  const stream = client.stream('demo.showcase', SHOWCASE, { traceId: 'trace-js-1' });
  const events = [];
  const ids = [];
  for await (const event of stream) {
    events.push(event);
    ids.push(stream.lastEventId);
    switch (event.type) {
      case 'skill_start':
        assert.deepEqual(event.data.steps, ['split', 'keywords', 'summarize', 'finish']);
        assert.equal(event.data.execution_channel, 'http-stream');
        break;
      case 'step_degraded':
        assert.equal(event.data.findings[0].kind, 'email');
        break;
      case 'step_skipped':
        assert.equal(event.step_id, 'finish');
        break;
      case 'done':
        assert.equal(event.status, 'completed');
        break;
      default:
        assert.equal(typeof event.message, 'string');
    }
  }
  checkOrder(events);
  assert.deepEqual(ids, events.map((_, i) => String(i + 1)));
  assert.ok(events.every((e) => e.trace_id === 'trace-js-1'));
  assert.ok(events.some((e) => e.type === 'step_degraded'));
  assert.equal(stream.runId, events[0].run_id);
  assert.equal(stream.reconnects, 0);
  const result = await stream.result();
  assert.equal(result.run_id, stream.runId);
  assert.equal(result.type, undefined);
  assert.deepEqual(result, (({ type, message, ...rest }) => rest)(events.at(-1)));
});

test('result() without iterating reads the stream itself', async () => {
  const stream = client.stream('text.summarize', { inputs: { text: 'One. Two. Three.', max_sentences: 1 } });
  const result = await stream.result();
  assert.equal(result.status, 'completed');
  assert.equal(result.skill_id, 'text.summarize');
  assert.ok(result.outputs.summary);
  assert.throws(() => stream[Symbol.asyncIterator](), SkillrunError);
});

test('result() during iteration resolves when done arrives', async () => {
  const stream = client.stream('demo.ticker', { inputs: { steps: 3 } });
  let pending;
  let n = 0;
  for await (const _ of stream) {
    pending ??= stream.result();
    n++;
  }
  assert.equal(n, 1 + 3 * 2 + 2);
  assert.equal((await pending).outputs.ticks, 3);
});

test('a failing run is events, not an exception', async () => {
  const events = [];
  const stream = client.stream('demo.showcase', { inputs: { text: 'Hi.', fail: true } });
  for await (const e of stream) events.push(e);
  checkOrder(events);
  const failed = events.find((e) => e.type === 'step_failed');
  assert.ok(failed && failed.data.error.message.includes('failed on request'));
  assert.equal((await stream.result()).status, 'failed');
});

test('break closes the connection at once and result() then rejects', async () => {
  const proxy = await startProxy(server.port);
  try {
    const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY });
    const stream = c.stream('demo.ticker', { inputs: { steps: 200, delay_ms: 50 } });
    let seen = 0;
    for await (const event of stream) {
      if (event.type === 'step_completed' && ++seen === 2) break;
    }
    await assert.rejects(stream.result(), /closed before its done event/);
    // The proxy saw the stream's connection go away (fetch may open a spare one).
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline && !proxy.closed[0]) await new Promise((r) => setTimeout(r, 20));
    assert.equal(proxy.closed[0], true);
    assert.match(proxy.requests[0], /^POST \/v1\/skills\/demo.ticker\/execute\/stream/);
  } finally {
    await proxy.close();
  }
});

test('an AbortSignal stops the stream and rejects with AbortError', async () => {
  const controller = new AbortController();
  const stream = client.stream('demo.ticker', { inputs: { steps: 200, delay_ms: 50 } }, { signal: controller.signal });
  const types = [];
  await assert.rejects(
    (async () => {
      for await (const event of stream) {
        types.push(event.type);
        if (types.length === 3) controller.abort();
      }
    })(),
    { name: 'AbortError' },
  );
  assert.equal(types.length, 3);
  await assert.rejects(stream.result(), { name: 'AbortError' });
});

test('an AbortSignal aborted before the start rejects without a request', async () => {
  const controller = new AbortController();
  controller.abort();
  const stream = client.stream('text.summarize', { inputs: { text: 'x' } }, { signal: controller.signal });
  await assert.rejects(stream.result(), { name: 'AbortError' });
  await assert.rejects(client.execute('text.summarize', { inputs: { text: 'x' } }, { signal: controller.signal }), {
    name: 'AbortError',
  });
});

test('an AbortSignal aborts a waiting execute', async () => {
  const started = Date.now();
  await assert.rejects(
    client.execute('demo.ticker', { inputs: { steps: 10, delay_ms: 1000 } }, { signal: AbortSignal.timeout(300) }),
    { name: 'TimeoutError' },
  );
  assert.ok(Date.now() - started < 3000);
});

test('execute returns the same result shape as the stream', async () => {
  const result = await client.execute('text.summarize', {
    inputs: { text: 'Cats purr. Dogs bark loudly. Cats sleep a lot.', max_sentences: 1 },
  });
  assert.equal(result.status, 'completed');
  assert.ok(result.outputs.keywords.includes('cats'));
  assert.equal(typeof result.run_id, 'string');
  assert.ok(Array.isArray(result.steps));
});

test('skills.list answers the body, as runs.list does (skills, runs: one shape for lists)', async () => {
  const page = await client.runs.list({ limit: 1 });
  assert.ok(Array.isArray(page.runs));
  const list = await client.skills.list();
  assert.ok(Array.isArray(list.skills), 'skills.list() returned a bare array where runs.list() returns its body');
  const ids = list.skills.map((s) => s.id);
  assert.deepEqual(ids, [...ids].sort());
  for (const id of ['demo.showcase', 'demo.ticker', 'text.summarize']) assert.ok(ids.includes(id), id);
  const ticker = await client.skills.get('demo.ticker');
  assert.equal(ticker.id, 'demo.ticker');
  assert.equal(ticker.inputs.properties.steps.maximum, 10000);
});

test('extra headers from the client and the call are sent', async () => {
  const proxy = await startProxy(server.port);
  try {
    const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY, headers: { 'x-client-tag': 'a' } });
    await c.skills.list({ headers: { 'x-call-tag': 'b' } });
    const head = proxy.requests.join('').toLowerCase();
    assert.match(head, /x-client-tag: a/);
    assert.match(head, /x-call-tag: b/);
    assert.match(head, new RegExp(`x-api-key: ${API_KEY}`));
  } finally {
    await proxy.close();
  }
});
