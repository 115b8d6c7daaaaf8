// runs.input: answering a step that waits for input (human.input), against a real server.
import assert from 'node:assert/strict';
import { after as afterAll, before, test } from 'node:test';
import { createClient, ConflictError, ValidationError } from '../dist/index.js';
import { API_KEY, checkOrder, startServer } from './helpers.js';

let server;
let client;
before(async () => {
  server = await startServer();
  client = createClient({ baseUrl: server.url, apiKey: API_KEY });
});
afterAll(() => server?.stop());

const TEXT = 'Skillrun runs skills. Each step is an event. Some steps wait for people.';

test('runs.input answers the step_waiting event; 422 ValidationError for a bad value, 409 ConflictError for a second answer', async () => {
  const run = await client.executeAsync('demo.approval', { inputs: { text: TEXT } });
  const events = [];
  for await (const e of client.runs.events(run.run_id)) {
    events.push(e);
    if (e.type !== 'step_waiting') continue;
    assert.equal(e.step_id, 'ask');
    assert.equal(e.data.answer_url, `/v1/runs/${run.run_id}/input`);
    assert.equal((await client.runs.get(run.run_id)).status, 'waiting');
    const bad = await client.runs.input(run.run_id, 'ask', { approve: 'yes' }).catch((err) => err);
    assert.ok(bad instanceof ValidationError, String(bad));
    assert.equal(bad.errors[0].field, 'value.approve');
    const answered = await client.runs.input(run.run_id, 'ask', { approve: false, comment: 'not now' });
    assert.equal(answered.run_id, run.run_id);
    await assert.rejects(client.runs.input(run.run_id, 'ask', { approve: true }), ConflictError);
  }
  checkOrder(events);
  const done = events.at(-1);
  assert.equal(done.type, 'done');
  assert.deepEqual(done.outputs, { decision: 'rejected', reason: 'not now' });
});

test('runs.input sends index for a foreach item (409 when no item of that index waits)', async () => {
  const run = await client.executeAsync('demo.approval', { inputs: { text: TEXT } });
  for await (const e of client.runs.events(run.run_id)) {
    if (e.type !== 'step_waiting') continue;
    await assert.rejects(client.runs.input(run.run_id, 'ask', { approve: true }, 3), ConflictError);
    await client.runs.input(run.run_id, 'ask', { approve: true });
  }
  assert.equal((await client.runs.get(run.run_id)).result.outputs.decision, 'published');
});
