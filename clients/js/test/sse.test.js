// SSE decoding (WHATWG HTML 9.2.6): every split of the bytes gives the same messages.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SSEDecoder } from '../dist/index.js';

const enc = new TextEncoder();

function decodeChunks(chunks) {
  const d = new SSEDecoder();
  const out = [];
  for (const c of chunks) out.push(...d.push(c));
  return { out, d };
}

function everySplit(bytes, expected, check = () => {}) {
  for (let i = 0; i <= bytes.length; i++) {
    for (const j of [i, Math.min(bytes.length, i + 1), Math.min(bytes.length, i + 7)]) {
      const { out, d } = decodeChunks([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]);
      assert.deepEqual(out, expected, `split at ${i}/${j}`);
      check(d);
    }
  }
}

const EVENTS = [
  { event: 'skill_start', data: '{"type":"skill_start","message":"héllo ✓ 🚀"}', id: '1', hasId: true },
  { event: 'step_start', data: '{"type":"step_start"}', id: '2', hasId: true },
  { event: 'done', data: '{"type":"done"}', id: '3', hasId: true },
];

function frames(eol) {
  return EVENTS.map((e) => `id: ${e.id}${eol}event: ${e.event}${eol}data: ${e.data}${eol}${eol}`).join(`: ping${eol}${eol}`);
}

for (const [name, eol] of [['LF', '\n'], ['CRLF', '\r\n'], ['CR', '\r']]) {
  test(`decodes ${name} line endings at every split point, multibyte text included`, () => {
    everySplit(enc.encode(frames(eol)), EVENTS, (d) => assert.equal(d.comments, 2));
  });
}

test('a leading BOM is dropped, and only one', () => {
  const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...enc.encode('data: a\n\n')]);
  everySplit(bytes, [{ event: 'message', data: 'a', id: undefined, hasId: false }]);
});

test('multi-line data joins with LF; "data" with no colon is an empty line', () => {
  const text = 'data: one\ndata:two\ndata\ndata:  three\n\n';
  everySplit(enc.encode(text), [{ event: 'message', data: 'one\ntwo\n\n three', id: undefined, hasId: false }]);
});

test('comments and blank lines alone dispatch nothing', () => {
  const { out } = decodeChunks([enc.encode(': ping\n\n\n: hi\r\n\r\n')]);
  assert.deepEqual(out, []);
});

test('id persists across events, an id with NUL is ignored, unknown fields are ignored', () => {
  const text = 'id: 7\ndata: a\n\ndata: b\n\nid: x\0y\nfoo: bar\ndata: c\n\nid\ndata: d\n\n';
  everySplit(enc.encode(text), [
    { event: 'message', data: 'a', id: '7', hasId: true },
    { event: 'message', data: 'b', id: '7', hasId: false },
    { event: 'message', data: 'c', id: '7', hasId: false },
    { event: 'message', data: 'd', id: '', hasId: true },
  ]);
});

test('retry sets the reconnection time only when it is all digits', () => {
  const { d } = decodeChunks([enc.encode('retry: 1500\n\nretry: 12x\n\nretry: -1\n\n')]);
  assert.equal(d.retry, 1500);
});

test('an event not ended by a blank line is discarded at the end', () => {
  const d = new SSEDecoder();
  assert.deepEqual(d.push(enc.encode('data: complete\n\ndata: partial\n')), [
    { event: 'message', data: 'complete', id: undefined, hasId: false },
  ]);
  d.end();
  assert.deepEqual(d.push(enc.encode('\n')), []);
});

test('a CR at the end of one chunk and LF at the start of the next are one line ending', () => {
  const { out } = decodeChunks([enc.encode('data: a\r'), enc.encode('\ndata: b\r'), enc.encode('\n\r\n')]);
  assert.deepEqual(out, [{ event: 'message', data: 'a\nb', id: undefined, hasId: false }]);
});

test('a huge event split into small chunks arrives whole', () => {
  const big = 'x'.repeat(1_000_000) + 'é';
  const bytes = enc.encode(`event: big\ndata: ${big}\n\n`);
  const chunks = [];
  for (let i = 0; i < bytes.length; i += 4093) chunks.push(bytes.subarray(i, i + 4093));
  const { out } = decodeChunks(chunks);
  assert.equal(out.length, 1);
  assert.equal(out[0].data, big);
  assert.equal(out[0].event, 'big');
});
