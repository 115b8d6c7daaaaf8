// Streams that heal: cuts mid-frame, idle timeouts, retries before a run exists; the runs API.
import assert from 'node:assert/strict';
import { after as afterAll, before, test } from 'node:test';
import { createClient, ConflictError, NotFoundError, StreamError } from '../dist/index.js';
import { API_KEY, after, checkOrder, startProxy, startServer } from './helpers.js';

let server;
let client;
before(async () => {
  server = await startServer();
  client = createClient({ baseUrl: server.url, apiKey: API_KEY });
});
afterAll(() => server?.stop());

const TICKER = { inputs: { steps: 4, delay_ms: 20 } };
const N = 1 + 4 * 2 + 2;

async function collect(stream) {
  const events = [];
  const ids = [];
  for await (const e of stream) {
    events.push(e);
    ids.push(stream.lastEventId);
  }
  return { events, ids };
}

function header(request, name) {
  const m = new RegExp(`^${name}: *(.*)$`, 'im').exec(request);
  return m?.[1]?.trim();
}

for (let k = 1; k <= N; k++) {
  for (const [where, extra] of [['in its id line', 2], ['in its data', 40]]) {
    test(`a cut inside event ${k} (${where}) resumes with Last-Event-ID ${k - 1}, every event once`, async () => {
      const proxy = await startProxy(server.port, (n) => (n === 0 ? { cut: (t) => after(t, '\nid: ', k, extra) } : {}));
      try {
        const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY });
        const stream = c.stream('demo.ticker', TICKER);
        const { events, ids } = await collect(stream);
        checkOrder(events);
        assert.deepEqual(ids, Array.from({ length: N }, (_, i) => String(i + 1)));
        assert.equal(stream.reconnects, 1);
        const resume = proxy.requests[1];
        assert.match(resume, new RegExp(`^GET /v1/runs/${stream.runId}/events `));
        assert.equal(header(resume, 'last-event-id'), k === 1 ? undefined : String(k - 1));
        assert.equal((await stream.result()).outputs.ticks, 4);
      } finally {
        await proxy.close();
      }
    });
  }
}

test('a cut before the answer (no run id yet) retries the start with the same Idempotency-Key', async () => {
  const proxy = await startProxy(server.port, (n) => (n === 0 ? { cut: () => 12 } : {}));
  try {
    const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY });
    const { events, ids } = await collect(c.stream('demo.ticker', TICKER));
    checkOrder(events);
    assert.equal(ids.length, N);
    const posts = proxy.requests.filter((r) => r.startsWith('POST '));
    assert.equal(posts.length, 2);
    const key = header(posts[0], 'idempotency-key');
    assert.match(key, /^[0-9a-f-]{36}$/);
    assert.equal(header(posts[1], 'idempotency-key'), key);
  } finally {
    await proxy.close();
  }
});

test('503 with Retry-After before the run exists is waited out, then the run starts once', async () => {
  const proxy = await startProxy(server.port, (n) =>
    n === 0
      ? { answer: 'HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n' }
      : {},
  );
  try {
    const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY });
    const started = Date.now();
    const result = await c.stream('text.summarize', { inputs: { text: 'A. B.' } }).result();
    assert.ok(Date.now() - started >= 1000, 'waited for Retry-After');
    assert.equal(result.status, 'completed');
    assert.equal(header(proxy.requests[0], 'idempotency-key'), header(proxy.requests[1], 'idempotency-key'));
  } finally {
    await proxy.close();
  }
});

test('no bytes for idleTimeoutMs is a drop: the stream resumes', async () => {
  const proxy = await startProxy(server.port, (n) => (n === 0 ? { stall: (t) => after(t, '\n\n', 3) } : {}));
  try {
    const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY, idleTimeoutMs: 400 });
    const started = Date.now();
    const stream = c.stream('demo.ticker', TICKER);
    const { events, ids } = await collect(stream);
    checkOrder(events);
    assert.equal(ids.length, N);
    assert.equal(stream.reconnects, 1);
    assert.ok(Date.now() - started >= 400);
    assert.equal(proxy.closed[0], true, 'the stalled connection was closed');
  } finally {
    await proxy.close();
  }
});

test("the server's retry: sets the reconnection delay", async () => {
  // The server sends no `retry:` today; a fetch wrapper adds one to the real answer and cuts it.
  let cutAt;
  let resumedAt;
  const fetchWith = async (url, init) => {
    if (url.includes('/events')) resumedAt = Date.now();
    const response = await fetch(url, init);
    if (!url.endsWith('/execute/stream')) return response;
    const reader = response.body.getReader();
    let sent = 0;
    const body = new ReadableStream({
      start(ctl) {
        ctl.enqueue(new TextEncoder().encode('retry: 1200\n\n'));
      },
      async pull(ctl) {
        const { done, value } = await reader.read();
        if (done || ++sent > 1) {
          cutAt = Date.now();
          reader.cancel();
          ctl.error(new TypeError('terminated'));
          return;
        }
        ctl.enqueue(value);
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
  const c = createClient({ baseUrl: server.url, apiKey: API_KEY, fetch: fetchWith });
  const { ids } = await collect(c.stream('demo.ticker', TICKER));
  assert.equal(ids.length, N);
  const waited = resumedAt - cutAt;
  // Never sooner than asked; the jitter stretches by at most a quarter.
  assert.ok(waited >= 1200 && waited < 1200 * 1.25 + 400, `waited ${waited} ms for retry: 1200`);
});

function problemAnswer(status, reason, retryAfter) {
  const body = JSON.stringify({ type: 'about:blank', title: reason, status });
  return (
    `HTTP/1.1 ${status} ${reason}\r\nretry-after: ${retryAfter}\r\ncontent-type: application/problem+json\r\n` +
    `content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`
  );
}

test('a resume answered 503, then 429, waits out each Retry-After and goes on, every event once', async () => {
  const plan = (n) =>
    [
      { cut: (t) => after(t, '\n\n', 3) },
      { answer: problemAnswer(503, 'Service Unavailable', 2) },
      { answer: problemAnswer(429, 'Too Many Requests', 1) },
    ][n] ?? {};
  const proxy = await startProxy(server.port, plan);
  try {
    const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY });
    const stream = c.stream('demo.ticker', TICKER);
    const events = [];
    let cutAt;
    for await (const e of stream) {
      events.push(e);
      if (events.length === 3) cutAt = Date.now();
    }
    const waited = Date.now() - cutAt;
    checkOrder(events);
    assert.deepEqual(
      events.map((_, i) => i),
      [...Array(N).keys()],
    );
    assert.equal(stream.reconnects, 3);
    // The backoff alone would wait about 0.25 + 0.5 + 1 s.
    assert.ok(waited >= 3000, `waited ${waited} ms for Retry-After: 2, then 1`);
    for (const n of [1, 2, 3]) {
      assert.match(proxy.requests[n], new RegExp(`^GET /v1/runs/${stream.runId}/events `));
      assert.equal(header(proxy.requests[n], 'last-event-id'), '3');
    }
  } finally {
    await proxy.close();
  }
});

test('an AbortSignal ends the wait before a resume at once, with AbortError', async () => {
  const plan = (n) =>
    [{ cut: (t) => after(t, '\n\n', 2) }, { answer: problemAnswer(503, 'Service Unavailable', 30) }][n] ?? {};
  const proxy = await startProxy(server.port, plan);
  try {
    const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY });
    const controller = new AbortController();
    const stream = c.stream('demo.ticker', TICKER, { signal: controller.signal });
    const seen = [];
    const started = Date.now();
    const iterating = (async () => {
      for await (const e of stream) seen.push(e.type);
    })();
    // Abort once the stream waits out the 503's Retry-After: 30.
    while (proxy.connections < 2 && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    controller.abort();
    await assert.rejects(iterating, { name: 'AbortError' });
    await assert.rejects(stream.result(), { name: 'AbortError' });
    assert.ok(Date.now() - started < 5000, 'did not wait the 30 s');
    assert.equal(seen.length, 2);
    assert.equal(proxy.connections, 2);
  } finally {
    await proxy.close();
  }
});

test('a resume answered 404 is a StreamError at once, carrying the NotFoundError', async () => {
  const body = JSON.stringify({ type: 'about:blank', title: 'Not Found', status: 404 });
  const plan = (n) =>
    [
      { cut: (t) => after(t, '\n\n', 2) },
      {
        answer: `HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      },
    ][n] ?? {};
  const proxy = await startProxy(server.port, plan);
  try {
    const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY });
    const stream = c.stream('demo.ticker', TICKER);
    const err = await collect(stream).catch((e) => e);
    assert.ok(err instanceof StreamError, String(err));
    assert.ok(err.cause instanceof NotFoundError, String(err.cause));
    assert.equal(err.lastEventId, '2');
    assert.equal(proxy.connections, 2);
  } finally {
    await proxy.close();
  }
});

test("reconnects carry the call's extra headers", async () => {
  const proxy = await startProxy(server.port, (n) => (n === 0 ? { cut: (t) => after(t, '\n\n', 2) } : {}));
  try {
    const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY });
    const { ids } = await collect(c.stream('demo.ticker', TICKER, { headers: { 'x-call-tag': 'b' } }));
    assert.equal(ids.length, N);
    assert.match(proxy.requests[1], /^GET /);
    assert.equal(header(proxy.requests[1], 'x-call-tag'), 'b');
    assert.equal(header(proxy.requests[1], 'last-event-id'), '2');
  } finally {
    await proxy.close();
  }
});

test('an answer whose headers never come (idleTimeoutMs) is retried with the same Idempotency-Key: one run', async () => {
  const traceId = `stall-${Date.now()}`;
  const proxy = await startProxy(server.port, (n) => (n === 0 ? { stall: () => 0 } : {}));
  try {
    const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY, idleTimeoutMs: 500 });
    const started = Date.now();
    const stream = c.stream('demo.ticker', TICKER, { traceId });
    const { events, ids } = await collect(stream);
    assert.ok(Date.now() - started >= 500);
    checkOrder(events);
    assert.deepEqual(ids, Array.from({ length: N }, (_, i) => String(i + 1)));
    const posts = proxy.requests.filter((r) => r.startsWith('POST '));
    assert.equal(posts.length, 2);
    assert.equal(header(posts[0], 'idempotency-key'), header(posts[1], 'idempotency-key'));
    assert.equal(proxy.closed[0], true, 'the stalled connection was closed');
    const page = await client.runs.list({ skill_id: 'demo.ticker', limit: 100 });
    assert.deepEqual(
      page.runs.filter((r) => r.trace_id === traceId).map((r) => r.run_id),
      [stream.runId],
    );
  } finally {
    await proxy.close();
  }
});

test('executeAsync, runs.get, runs.list and runs.events', async () => {
  const run = await client.executeAsync('demo.ticker', { inputs: { steps: 3, delay_ms: 30 } }, { traceId: 'async-1' });
  assert.match(run.run_id, /^run_/);
  assert.ok(['queued', 'running'].includes(run.status));
  const { events } = await collect(client.runs.events(run.run_id));
  checkOrder(events);
  const got = await client.runs.get(run.run_id);
  assert.equal(got.status, 'completed');
  assert.equal(got.result.outputs.ticks, 3);
  assert.equal(got.trace_id, 'async-1');
  const page = await client.runs.list({ skill_id: 'demo.ticker', limit: 100 });
  assert.ok(page.runs.some((r) => r.run_id === run.run_id));
  const tail = client.runs.events(run.run_id, { after: 5 });
  const { ids } = await collect(tail);
  assert.deepEqual(ids, ['6', '7', '8', '9']);
});

test('runs.cancel ends a running run as cancelled; a second cancel is a ConflictError', async () => {
  const run = await client.executeAsync('demo.ticker', { inputs: { steps: 100, delay_ms: 100 } });
  const stream = client.runs.events(run.run_id);
  const events = [];
  for await (const e of stream) {
    events.push(e);
    if (events.length === 2) await client.runs.cancel(run.run_id);
  }
  assert.equal(events.at(-1).type, 'done');
  assert.equal(events.at(-1).status, 'cancelled');
  await assert.rejects(client.runs.cancel(run.run_id), ConflictError);
});
