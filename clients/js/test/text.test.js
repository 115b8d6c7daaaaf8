// stream.text() and stream.finalText(): a step's text as step_delta makes it. The server
// side of deltas is not needed: a real HTTP server of the test's own serves an event log
// with step_delta events, answers Last-Event-ID like the real one (only the events after
// it), and resets connections mid-frame where a test says.
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { createClient, StreamError } from '../dist/index.js';
import { API_KEY } from './helpers.js';

const RUN = 'run_text';
const TS = '2026-01-01T00:00:00Z';
const ERROR = { kind: 'upstream', message: 'boom' };

function envelope(type, stepId, data) {
  return { type, message: type, timestamp: TS, step_id: stepId, trace_id: 't', run_id: RUN, data };
}
const start = (s, place = {}) => envelope('step_start', s, { uses: 'llm.chat', ...place });
const completed = (s, place = {}) => envelope('step_completed', s, { produced_output: {}, duration_ms: 1, ...place });
const retrying = (s, attempt) => envelope('step_retrying', s, { attempt, error: ERROR, delay_ms: 1 });
function delta(s, attempt, sequence, text, progress, place = {}) {
  const body = {};
  if (text !== undefined) body.text = text;
  if (progress !== undefined) body.progress = progress;
  return envelope('step_delta', s, { attempt, sequence, delta: body, ...place });
}

/** `middle` between a run's skill_start and its skill_completed/done. */
function run(...middle) {
  return [
    envelope('skill_start', null, { skill_id: 's', version: '1', execution_channel: 'http-stream', steps: ['a'] }),
    ...middle,
    envelope('skill_completed', null, { status: 'completed', duration_ms: 2 }),
    { type: 'done', message: 'done', skill_id: 's', status: 'completed', outputs: {}, trace_id: 't', run_id: RUN, duration_ms: 2, steps: [] },
  ];
}

// The hostile log: a model answers in chunks, its first attempt fails after two chunks
// (a retry), a second step streams meanwhile, progress comes without text.
const ANSWER = run(
  start('answer'),
  delta('answer', 1, 1, 'Bonj'),
  delta('answer', 1, 2, 'our, le'),
  retrying('answer', 1),
  start('other'),
  delta('other', 1, 1, undefined, 0.5),
  delta('other', 1, 2, 'side '),
  delta('answer', 2, 1, 'Hello, '),
  delta('answer', 2, 2, 'wor', 0.7),
  delta('other', 1, 3, 'text'),
  delta('answer', 2, 3, 'ld!'),
  completed('answer'),
  completed('other'),
);

/** Serves `log` from after Last-Event-ID; connection i is reset after `cuts[i]` bytes of events. */
async function logServer(log, cuts = []) {
  const frames = log.map((e, i) => `id: ${i + 1}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push(req.headers);
    const after = Number(req.headers['last-event-id'] ?? 0);
    const body = Buffer.from(frames.slice(after).join(''));
    const cut = cuts.shift();
    res.writeHead(200, { 'content-type': 'text/event-stream', 'x-run-id': RUN });
    res.write('retry: 5\n\n'); // reconnect at once
    if (cut === undefined) return void res.end(body);
    res.write(body.subarray(0, cut), () => setTimeout(() => req.socket.resetAndDestroy(), 20));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    /** The byte offset `extra` bytes into frame k (1-based). */
    offset: (k, extra) => Buffer.byteLength(frames.slice(0, k - 1).join('')) + extra,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

async function withLog(log, cuts, fn) {
  const srv = await logServer(log, cuts);
  try {
    return await fn(createClient({ baseUrl: srv.url, apiKey: API_KEY }), srv);
  } finally {
    await srv.close();
  }
}

async function texts(stream, stepId, options) {
  const out = [];
  for await (const chunk of stream.text(stepId, options)) out.push(chunk);
  return out;
}

/** What a UI shows for `stepId` at the end: restarts clear it. */
function joined(chunks, stepId) {
  let shown = '';
  for (const c of chunks) if (c.stepId === stepId) shown = c.restart ? '' : shown + c.text;
  return shown;
}

test('text() yields every chunk live and marks the restart when a retry voids yielded text', async () => {
  // "Bonj", "our, le" then step_retrying: one restart marker, then only attempt 2; progress-only deltas yield nothing.
  const got = await withLog(ANSWER, [], (c) => texts(c.runs.events(RUN), 'answer'));
  assert.deepEqual(
    got.map((c) => [c.text, c.attempt, c.restart]),
    [['Bonj', 1, false], ['our, le', 1, false], ['', 1, true], ['Hello, ', 2, false], ['wor', 2, false], ['ld!', 2, false]],
  );
  assert.ok(got.every((c) => c.stepId === 'answer' && c.index === undefined));
  assert.equal(joined(got, 'answer'), 'Hello, world!');
});

test('text() of all steps interleaves them in event order', async () => {
  const got = await withLog(ANSWER, [], (c) => texts(c.runs.events(RUN)));
  assert.deepEqual(
    got.map((c) => [c.stepId, c.text]),
    [['answer', 'Bonj'], ['answer', 'our, le'], ['answer', ''], ['other', 'side '], ['answer', 'Hello, '], ['answer', 'wor'], ['other', 'text'], ['answer', 'ld!']],
  );
  assert.equal(joined(got, 'other'), 'side text');
});

test('text() across a connection reset inside each delta frame loses and repeats nothing', async () => {
  const expected = await withLog(ANSWER, [], (c) => texts(c.runs.events(RUN)));
  const deltaFrames = ANSWER.flatMap((e, i) => (e.type === 'step_delta' ? [i + 1] : []));
  for (const k of deltaFrames) {
    for (const extra of [3, 40]) {
      const probe = await logServer(ANSWER);
      const cut = probe.offset(k, extra);
      await probe.close();
      await withLog(ANSWER, [cut], async (c, srv) => {
        const stream = c.runs.events(RUN);
        assert.deepEqual(await texts(stream), expected, `cut in frame ${k} at +${extra}`);
        assert.equal(stream.reconnects, 1);
        assert.deepEqual(srv.requests.map((h) => h['last-event-id']), [undefined, String(k - 1)]);
      });
    }
  }
});

test('text() across several cuts in one stream joins to the uninterrupted text', async () => {
  await withLog(ANSWER, [450, 200, 30, 260], async (c, srv) => {
    const got = await texts(c.runs.events(RUN), 'answer');
    assert.equal(joined(got, 'answer'), 'Hello, world!');
    assert.deepEqual(got.filter((x) => !x.restart).map((x) => x.text), ['Bonj', 'our, le', 'Hello, ', 'wor', 'ld!']);
    assert.equal(srv.requests.length, 5);
  });
});

test('finalText() is only the attempt that produced the output, and result() still resolves', async () => {
  // Not "Bonjour, leHello, world!": the failed attempt's text is not part of the output.
  await withLog(ANSWER, [], async (c) => {
    const stream = c.runs.events(RUN);
    assert.equal(await stream.finalText('answer'), 'Hello, world!');
    assert.equal(await stream.finalText('other'), 'side text');
    assert.equal((await stream.result()).status, 'completed');
    assert.equal(await stream.finalText('answer'), 'Hello, world!');
  });
});

test('finalText() asked while text() reads the stream resolves when the step ends', async () => {
  await withLog(ANSWER, [ANSWER.length * 40], async (c) => {
    const stream = c.runs.events(RUN);
    let final;
    const chunks = [];
    for await (const chunk of stream.text('answer')) {
      final ??= stream.finalText('answer'); // does not read the stream itself: text() does
      chunks.push(chunk);
    }
    assert.equal(await final, 'Hello, world!');
    assert.equal(joined(chunks, 'answer'), 'Hello, world!');
  });
});

test('finalText() after a fallback, and for steps without output', async () => {
  // "draft" then step_fallback to a capability that streams nothing: "" (and a restart in text());
  // a failed step's text ("oops") is null, a skipped step's null, a step that never ran null.
  const log = run(
    start('a'),
    delta('a', 1, 1, 'draft'),
    envelope('step_fallback', 'a', { error: ERROR, uses: 'text.extract' }),
    completed('a'),
    start('b'),
    delta('b', 1, 1, 'oops'),
    envelope('step_failed', 'b', { error: ERROR, duration_ms: 1, on_error: 'continue' }),
    envelope('step_skipped', 'c', { reason: 'condition' }),
  );
  await withLog(log, [], async (c) => {
    assert.deepEqual((await texts(c.runs.events(RUN), 'a')).map((x) => [x.text, x.restart]), [['draft', false], ['', true]]);
    assert.equal(await c.runs.events(RUN).finalText('a'), '');
    assert.equal(await c.runs.events(RUN).finalText('b'), null);
    assert.equal(await c.runs.events(RUN).finalText('c'), null);
    assert.equal(await c.runs.events(RUN).finalText('never'), null);
  });
});

test('text() of one foreach item, and an item that starts over after a server restart', async () => {
  const log = run(
    start('each', { index: 0 }),
    start('each', { index: 1 }),
    delta('each', 1, 1, 'zero', undefined, { index: 0 }),
    delta('each', 1, 1, 'one', undefined, { index: 1 }),
    completed('each', { index: 1 }),
    envelope('skill_resumed', null, { restored: 1, rerun: 1, resumes: 1 }),
    start('each', { index: 0 }),
    delta('each', 1, 1, 'ZERO', undefined, { index: 0 }),
    completed('each', { index: 0 }),
  );
  await withLog(log, [], async (c) => {
    assert.deepEqual((await texts(c.runs.events(RUN), 'each', { index: 1 })).map((x) => x.text), ['one']);
    const item0 = await texts(c.runs.events(RUN), 'each', { index: 0 });
    assert.deepEqual(item0.map((x) => [x.text, x.restart]), [['zero', false], ['', true], ['ZERO', false]]);
    assert.equal(await c.runs.events(RUN).finalText('each', { index: 0 }), 'ZERO');
    assert.equal(await c.runs.events(RUN).finalText('each', { index: 1 }), 'one');
    assert.equal((await texts(c.runs.events(RUN), 'each')).length, 4);
  });
});

test('a new attempt without a retry event still restarts the text', async () => {
  await withLog(run(start('s'), delta('s', 1, 1, 'a'), delta('s', 2, 1, 'b'), completed('s')), [], async (c) => {
    assert.deepEqual((await texts(c.runs.events(RUN))).map((x) => [x.text, x.attempt, x.restart]), [['a', 1, false], ['', 1, true], ['b', 2, false]]);
    assert.equal(await c.runs.events(RUN).finalText('s'), 'b');
  });
});

test('finalText() rejects when the stream fails before the step ends', async () => {
  // The server resets every connection inside the first delta; after maxRetries the stream gives up.
  const probe = await logServer(ANSWER);
  const cut = probe.offset(2, 10);
  await probe.close();
  await withLog(ANSWER, [cut, 0, 0, 0], async (_c, srv) => {
    const c = createClient({ baseUrl: srv.url, apiKey: API_KEY, maxRetries: 2 });
    await assert.rejects(c.runs.events(RUN).finalText('answer'), StreamError);
  });
});
