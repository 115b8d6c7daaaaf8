// In headless Chromium (Debian's package, driven by playwright-core): a page on one
// origin imports the built package and streams a skill from a server on another.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { join, normalize } from 'node:path';
import { test } from 'node:test';
import { API_KEY, PKG, REQUIRE_ALL, startServer } from './helpers.js';

const CHROMIUM = process.env.SKILLRUN_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>skillrun-client in a browser</title>
<style>
  body { font: 15px system-ui, sans-serif; margin: 2em; }
  li { margin: .2em 0; } code { font-weight: 600; display: inline-block; min-width: 9em; }
  li[data-type=step_degraded] code, li[data-type=step_failed] code { color: #b45309; }
  li[data-type=done] code { color: #15803d; }
</style>
<h1>demo.showcase, streamed live</h1>
<ol id="events"></ol>
<h2>Result</h2>
<p id="result">running…</p>
<script type="module">
  import { createClient, ValidationError } from '/pkg/index.js';
  const params = new URLSearchParams(location.search);
  const client = createClient({ baseUrl: params.get('api'), apiKey: params.get('key') });
  const list = document.getElementById('events');
  try {
    const stream = client.stream('demo.showcase', { inputs: { text: 'Mail ann@example.org. Cats purr.', detailed: true } });
    for await (const event of stream) {
      const li = document.createElement('li');
      li.dataset.type = event.type;
      li.dataset.id = stream.lastEventId;
      const type = document.createElement('code');
      type.textContent = event.type;
      li.append(type, ' ', event.type === 'done' ? 'run ' + event.status : event.message);
      list.append(li);
    }
    const result = await stream.result();
    document.getElementById('result').textContent = result.status + ': ' + result.outputs.summary;
    let validation = null;
    try {
      await client.execute('text.summarize', { inputs: { text: 'x', max_sentences: 99 } });
    } catch (err) {
      validation = err instanceof ValidationError ? err.errors[0].field : String(err);
    }
    // Exposed by CORS, so readable from this origin.
    const r = await fetch(params.get('api') + '/v1/skills', { headers: { 'x-api-key': params.get('key') } });
    const exposed = { runId: r.headers.get('x-run-id'), remaining: r.headers.get('ratelimit-remaining') };
    window.__outcome = { runId: stream.runId, status: result.status, validation, exposed };
  } catch (err) {
    window.__outcome = { error: String(err) };
  }
</script>`;

function servePage() {
  const dist = join(PKG, 'dist');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(PAGE);
    }
    if (url.pathname.startsWith('/pkg/')) {
      const file = normalize(join(dist, url.pathname.slice(5)));
      if (file.startsWith(dist) && existsSync(file)) {
        res.writeHead(200, { 'content-type': file.endsWith('.js') ? 'text/javascript' : 'application/octet-stream' });
        return res.end(readFileSync(file));
      }
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('a page on another origin streams a skill and renders its events', async (t) => {
  if (!existsSync(CHROMIUM)) {
    if (REQUIRE_ALL) assert.fail(`${CHROMIUM} is missing (SKILLRUN_REQUIRE_ALL=1 forbids skipping)`);
    t.skip(`${CHROMIUM} is missing (apt-get install chromium)`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const page = await servePage();
  const origin = `http://127.0.0.1:${page.address().port}`;
  const api = await startServer({ SKILLRUN_CORS_ORIGINS: origin });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  try {
    const tab = await browser.newPage();
    const consoleLines = [];
    tab.on('console', (m) => consoleLines.push(m.text()));
    await tab.goto(`${origin}/?api=${encodeURIComponent(api.url)}&key=${API_KEY}`);
    await tab.waitForFunction(() => window.__outcome !== undefined, null, { timeout: 30_000 });
    const outcome = await tab.evaluate(() => window.__outcome);
    assert.equal(outcome.error, undefined, `${outcome.error}\n${consoleLines.join('\n')}`);
    if (process.env.SKILLRUN_SCREENSHOT) await tab.screenshot({ path: process.env.SKILLRUN_SCREENSHOT, fullPage: true });
    const rendered = await tab.$$eval('#events li', (lis) => lis.map((li) => [li.dataset.type, li.dataset.id, li.textContent]));
    const types = rendered.map(([type]) => type);
    assert.equal(types[0], 'skill_start');
    assert.deepEqual(types.slice(-2), ['skill_completed', 'done']);
    assert.ok(types.includes('step_degraded'), types.join());
    assert.deepEqual(
      rendered.map(([, id]) => id),
      rendered.map((_, i) => String(i + 1)),
    );
    assert.equal(rendered.at(-1)[2], 'done run completed');
    assert.equal(rendered[0][2], "skill_start Starting skill 'demo.showcase'.");
    const shown = await tab.textContent('#result');
    assert.match(shown, /^completed: \S/);
    assert.ok(!shown.includes('ann@example.org'), 'the gate redacted the address');
    assert.match(outcome.runId, /^run_/);
    assert.match(outcome.exposed.remaining, /^[0-9]+$/, 'RateLimit-Remaining is exposed');
    assert.equal(outcome.status, 'completed');
    assert.equal(outcome.validation, 'inputs.max_sentences');
  } finally {
    await browser.close();
    await api.stop();
    await new Promise((r) => page.close(r));
  }
});
