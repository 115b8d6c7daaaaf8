// Every error class, from a real server (or, for 5xx and dead sockets, a proxy in front of it).
import assert from 'node:assert/strict';
import { after as afterAll, before, test } from 'node:test';
import * as sr from '../dist/index.js';
import { API_KEY, after, freePort, startProxy, startServer } from './helpers.js';

const { createClient } = sr;
let server;
let client;
before(async () => {
  server = await startServer();
  client = createClient({ baseUrl: server.url, apiKey: API_KEY });
});
afterAll(() => server?.stop());

test('the tree: every class is a SkillrunError and names itself', () => {
  for (const name of ['BadRequestError', 'AuthenticationError', 'NotFoundError', 'ConflictError', 'ValidationError', 'RateLimitError', 'InternalServerError']) {
    assert.ok(sr[name].prototype instanceof sr.APIError, name);
  }
  assert.ok(sr.APIError.prototype instanceof sr.SkillrunError);
  assert.ok(sr.APITimeoutError.prototype instanceof sr.APIConnectionError);
  assert.ok(sr.APIConnectionError.prototype instanceof sr.SkillrunError);
  assert.ok(sr.StreamError.prototype instanceof sr.SkillrunError);
  const h = new Headers({ 'retry-after': '7' });
  for (const name of ['APIError', 'BadRequestError', 'AuthenticationError', 'NotFoundError', 'ConflictError', 'ValidationError', 'RateLimitError', 'InternalServerError']) {
    assert.equal(new sr[name](418, undefined, h).name, name);
  }
  assert.equal(new sr.RateLimitError(429, undefined, h).retryAfter, 7);
  for (const name of ['SkillrunError', 'APIConnectionError', 'APITimeoutError']) assert.equal(new sr[name]('x').name, name);
  const streamError = new sr.StreamError('gave up', { runId: 'run_1', lastEventId: '4' });
  assert.equal(streamError.name, 'StreamError');
  assert.match(streamError.message, /run run_1, last event 4/);
});

test('400 BadRequestError for a malformed run id', async () => {
  const err = await client.runs.get('not a run id!').catch((e) => e);
  assert.ok(err instanceof sr.BadRequestError, String(err));
  assert.equal(err.status, 400);
  assert.equal(err.problem.status, 400);
});

test('401 AuthenticationError for a wrong key, on calls and streams', async () => {
  const bad = createClient({ baseUrl: server.url, apiKey: 'wrong' });
  const err = await bad.skills.list().catch((e) => e);
  assert.ok(err instanceof sr.AuthenticationError);
  assert.equal(err.problem.title, 'Unauthorized');
  await assert.rejects(bad.stream('text.summarize', { inputs: { text: 'x' } }).result(), sr.AuthenticationError);
});

test('404 NotFoundError for an unknown skill or run', async () => {
  const err = await client.skills.get('no.such.skill').catch((e) => e);
  assert.ok(err instanceof sr.NotFoundError);
  assert.match(err.message, /no\.such\.skill/);
  await assert.rejects(client.runs.get('run_doesnotexist'), sr.NotFoundError);
  const stream = client.stream('no.such.skill', { inputs: {} });
  await assert.rejects(async () => {
    for await (const _ of stream) assert.fail('no event expected');
  }, sr.NotFoundError);
});

test('409 ConflictError for cancelling a finished run', async () => {
  const result = await client.execute('text.summarize', { inputs: { text: 'One. Two.' } });
  const err = await client.runs.cancel(result.run_id).catch((e) => e);
  assert.ok(err instanceof sr.ConflictError, String(err));
  assert.equal(err.status, 409);
});

test('422 ValidationError names the failing field', async () => {
  const err = await client.execute('text.summarize', { inputs: { text: 'x', max_sentences: 99 } }).catch((e) => e);
  assert.ok(err instanceof sr.ValidationError, String(err));
  assert.equal(err.errors[0].field, 'inputs.max_sentences');
  assert.match(err.message, /inputs\.max_sentences/);
});

test('a real 422 names each field error once (it said "inputs.steps: 0 is less than the minimum of 1 (inputs.steps: 0 …)")', async () => {
  const err = await client.execute('demo.ticker', { inputs: { steps: 0 } }).catch((e) => e);
  assert.ok(err instanceof sr.ValidationError, String(err));
  for (const e of err.errors) assert.equal(err.message.split(`${e.field}: ${e.message}`).length, 2, err.message);
});

test('other statuses (413) are a plain APIError with the problem', async () => {
  const err = await client.execute('text.summarize', { inputs: { text: 'x'.repeat(9_000_000) } }).catch((e) => e); // over the 8 MiB body limit
  assert.equal(err.constructor, sr.APIError, String(err));
  assert.equal(err.status, 413);
  assert.equal(err.problem.status, 413);
  assert.equal(err.name, 'APIError');
});

test('429 RateLimitError with retryAfter when retries are used up', async () => {
  const limited = await startServer({ SKILLRUN_RATE_LIMIT: '2/minute' });
  try {
    const c = createClient({ baseUrl: limited.url, apiKey: API_KEY, maxRetries: 0 });
    await c.skills.list();
    await c.skills.list();
    const err = await c.skills.list().catch((e) => e);
    assert.ok(err instanceof sr.RateLimitError, String(err));
    assert.ok(err.retryAfter > 0 && err.retryAfter <= 60);
    assert.equal(err.headers.get('ratelimit-remaining'), '0');
  } finally {
    await limited.stop();
  }
});

test('5xx InternalServerError (the server cannot be made to fail: a proxy answers)', async () => {
  const body = JSON.stringify({ type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'boom' });
  const proxy = await startProxy(server.port, () => ({
    answer: `HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/problem+json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
  }));
  try {
    const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY });
    const err = await c.skills.list().catch((e) => e);
    assert.ok(err instanceof sr.InternalServerError);
    assert.equal(err.problem.detail, 'boom');
    assert.equal(proxy.connections, 1, '500 is not retried');
  } finally {
    await proxy.close();
  }
});

test('APIConnectionError when nothing listens, after the retries', async () => {
  const port = await freePort();
  const c = createClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: API_KEY, maxRetries: 1 });
  const err = await c.skills.list().catch((e) => e);
  assert.ok(err instanceof sr.APIConnectionError && !(err instanceof sr.APITimeoutError), String(err));
});

test('APITimeoutError when the answer never comes', async () => {
  const proxy = await startProxy(server.port, () => ({ stall: () => 0 }));
  try {
    const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY, maxRetries: 1, idleTimeoutMs: 300 });
    const err = await c.skills.list().catch((e) => e);
    assert.ok(err instanceof sr.APITimeoutError, String(err));
    assert.equal(proxy.connections, 2, 'a timeout is retried like a connection error');
  } finally {
    await proxy.close();
  }
});

test('StreamError with run id and last event id when resuming keeps failing', async () => {
  // The first connection is cut after two whole events, every resume before its answer.
  const proxy = await startProxy(server.port, (n) => ({ cut: n === 0 ? (t) => after(t, '\n\n', 2) : () => 12 }));
  try {
    const c = createClient({ baseUrl: proxy.url, apiKey: API_KEY, maxRetries: 2 });
    const stream = c.stream('demo.ticker', { inputs: { steps: 5 } });
    const seen = [];
    const err = await (async () => {
      for await (const e of stream) seen.push(e.type);
    })().catch((e) => e);
    assert.ok(err instanceof sr.StreamError, String(err));
    assert.equal(err.runId, stream.runId);
    assert.match(err.runId, /^run_/);
    assert.equal(err.lastEventId, String(seen.length));
    assert.equal(seen.length, 2);
    assert.equal(proxy.connections, 3, 'the start and two resumes');
    assert.equal(stream.reconnects, 2);
    await assert.rejects(stream.result(), sr.StreamError);
  } finally {
    await proxy.close();
  }
});
