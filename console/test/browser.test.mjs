// The console in headless Chromium (Debian's package, driven by playwright-core)
// against a real `skillrun serve` that tests/test_console_browser.py starts:
// SKILLRUN_URL (the server, with its --root-path), SKILLRUN_KEY, and optionally
// SKILLRUN_SCREENSHOTS (a folder for a screenshot of each state). One browser for all.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

const URL_ = process.env.SKILLRUN_URL;
const KEY = process.env.SKILLRUN_KEY;
const SHOTS = process.env.SKILLRUN_SCREENSHOTS;
const CHROMIUM = process.env.SKILLRUN_CHROMIUM ?? '/usr/bin/chromium';
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
assert.ok(URL_ && KEY, 'SKILLRUN_URL and SKILLRUN_KEY are needed (tests/test_console_browser.py sets them)');

let browser;
let page;

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on('pageerror', (err) => console.error('page error:', err));
});
after(async () => browser?.close());

async function shot(name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** axe-core: no serious or critical violations on the page as it is. */
async function accessible(name) {
  await page.addScriptTag({ content: AXE }).catch(async () => {
    // The page's CSP forbids inline scripts: evaluate the source instead.
    await page.evaluate(AXE);
  });
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`), [], `axe on ${name}`);
}

async function signIn() {
  await page.goto(`${URL_}/ui/`);
  await page.getByLabel('API key').fill(KEY);
  await page.getByLabel('API key').press('Enter');
  await page.locator('ul.skills').waitFor();
}

async function runFromForm(skillId, fill) {
  await page.goto(`${URL_}/ui/skills/${skillId}`);
  await page.getByRole('button', { name: 'Run', exact: true }).waitFor();
  await fill();
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await page.waitForURL(/\/ui\/runs\/run_/);
}

async function finalStatus() {
  const el = page.locator('[data-run-status]');
  await page.waitForFunction(() => ['completed', 'failed', 'cancelled', 'interrupted'].includes(document.querySelector('[data-run-status]')?.getAttribute('data-run-status')), null, { timeout: 30_000 });
  return el.getAttribute('data-run-status');
}

async function runFromApi() {
  const runId = page.url().split('/runs/')[1];
  const r = await fetch(`${URL_}/v1/runs/${runId}`, { headers: { 'x-api-key': KEY } });
  return r.json();
}

/**
 * The event id of every row of the (virtualised) timeline, in list order, read by
 * scrolling it from top to bottom a viewport at a time: at each stop each rendered row
 * gives its place in the whole list (`aria-posinset`) and its `data-event-id`. Every
 * place from 1 to `data-rows` must have been seen, always with the same id, so a
 * duplicated row is a place too many and a missing one a gap.
 */
async function timelineIds() {
  const { stops, total } = await page.locator('.timeline-view').evaluate(async (el) => {
    const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const seen = [];
    for (let top = 0; ; top += el.clientHeight) {
      el.scrollTop = top;
      await frame();
      seen.push([...el.querySelectorAll('li')].map((li) => [Number(li.getAttribute('aria-posinset')), li.getAttribute('data-event-id')]));
      if (top + el.clientHeight >= el.scrollHeight) return { stops: seen, total: Number(el.querySelector('ol').getAttribute('data-rows')) };
    }
  });
  const byPlace = new Map();
  for (const [place, id] of stops.flat()) {
    assert.equal(byPlace.get(place) ?? id, id, `row ${place} shows one event`);
    byPlace.set(place, id);
  }
  assert.deepEqual([...byPlace.keys()].sort((a, b) => a - b), Array.from({ length: total }, (_, i) => i + 1));
  return Array.from({ length: total }, (_, i) => Number(byPlace.get(i + 1)));
}

/**
 * Press Tab until the focused element matches `selector` (at most `max` presses); every
 * element focused on the way must show a visible focus ring (an outline of 2 px or more).
 */
async function tabTo(selector, max = 60) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const at = await page.evaluate((sel) => {
      const el = document.activeElement ?? document.body;
      const cs = getComputedStyle(el);
      return { match: el.matches(sel), ring: cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 2, what: el.outerHTML.slice(0, 100) };
    }, selector);
    assert.ok(at.ring || at.what.startsWith('<body'), `no visible focus on ${at.what}`);
    if (at.match) return;
  }
  assert.fail(`${selector} is not reached with Tab`);
}

const state = (id) => page.locator(`.canvas > [data-step-id="${id}"]`).getAttribute('data-state');

test('a wrong key is refused with a clear message; the right key signs in with Enter', async () => {
  await page.goto(`${URL_}/ui/`);
  await page.getByLabel('API key').fill('wrong-key-0000000000');
  await page.getByLabel('API key').press('Enter');
  await page.getByText('refused this API key (401)').waitFor();
  await accessible('sign-in');
  await shot('sign-in-refused');
  await signIn();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('skillrun.apiKey')), KEY);
  assert.ok(!page.url().includes(KEY));
  await accessible('skills');
  await shot('skills');
});

test('demo.showcase, detailed on: split degraded with its findings, keywords run, outputs shown', async () => {
  await runFromForm('demo.showcase', async () => {
    await accessible('skill page');
    await shot('skill-demo.showcase');
    await page.getByLabel('text', { exact: true }).fill('Mail ann@example.org please. Cats purr loudly. Dogs bark.');
    await page.getByLabel('detailed', { exact: true }).check();
  });
  assert.equal(await finalStatus(), 'completed');
  assert.equal(await state('split'), 'degraded');
  assert.match(await page.locator('.canvas > [data-step-id="split"] .status').textContent(), /pii.*email/);
  assert.equal(await state('keywords'), 'completed');
  assert.equal(await state('summarize'), 'completed');
  assert.equal(await state('finish'), 'skipped');
  await page.locator('.outputs').getByText('summary').first().waitFor();
  assert.match(await page.locator('.outputs').textContent(), /REDACTED:email/);
  await accessible('run page');
  await shot('run-showcase-completed');
});

test('demo.showcase, detailed off and fail on: keywords skipped with its condition, the failure shown', async () => {
  await runFromForm('demo.showcase', async () => {
    await page.getByLabel('text', { exact: true }).fill('Cats purr. Dogs bark.');
    await page.getByLabel('fail', { exact: true }).check();
  });
  assert.equal(await finalStatus(), 'failed');
  assert.equal(await state('keywords'), 'skipped');
  assert.match(await page.locator('.canvas > [data-step-id="keywords"] .status').textContent(), /inputs\.detailed/);
  assert.equal(await state('finish'), 'failed');
  assert.match(await page.getByRole('alert').first().textContent(), /failed on request/);
  await shot('run-showcase-failed');
});

test('doc.pipeline: the foreach of nested skills and its items finish in their group', async () => {
  await runFromForm('doc.pipeline', async () => {
    await page.getByLabel('document', { exact: true }).fill('# One\nCats purr. Mail a@b.co.\n\n# Two\nDogs bark.\n\n# Three\nBirds sing.');
    await page.getByLabel('flaky_failures', { exact: true }).fill('1');
  });
  assert.equal(await finalStatus(), 'completed');
  // Every node ends as the run's result says (the result is the log's projection).
  const result = (await runFromApi()).result;
  for (const s of result.steps) assert.equal(await state(s.id), s.status, s.id);
  const items = page.locator('.canvas > [data-step-id="summaries"] .items > li');
  assert.equal(await items.count(), 3);
  for (let i = 0; i < 3; i++) {
    const nested = page.locator(`[data-step-id="summaries[${i}]/summarize"]`);
    assert.equal(await nested.getAttribute('data-state'), 'completed');
  }
  assert.match(await page.locator('.canvas > [data-step-id="summaries"] .counter').textContent(), /3\/3/);
  assert.equal(await state('enrich'), 'completed');
  await shot('run-doc-pipeline');
});

test('a 422 the form cannot catch (a pattern) is shown on its field', async () => {
  await page.goto(`${URL_}/ui/skills/web.summarize`);
  await page.getByLabel('url', { exact: true }).fill('ftp://example.org/');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await page.locator('[data-field="url"] .field-error').filter({ hasText: /\S/ }).waitFor();
  assert.equal(await page.getByLabel('url', { exact: true }).getAttribute('aria-invalid'), 'true');
  assert.ok(page.url().endsWith('/ui/skills/web.summarize'));
  await shot('form-422');
});

test('a reload in the middle of a 20-item demo.ticker continues with one row per event', async () => {
  await runFromForm('demo.ticker', async () => {
    await page.getByLabel('steps', { exact: true }).fill('20');
    await page.getByLabel('delay_ms', { exact: true }).fill('150');
  });
  await page.waitForFunction(() => document.querySelectorAll('.timeline li').length >= 8);
  await page.reload();
  assert.equal(await finalStatus(), 'completed');
  // skill_start, 20 x (step_start, step_completed), skill_completed, done
  await page.waitForFunction(() => document.querySelector('.timeline')?.getAttribute('data-rows') === '43');
  // Virtualised: the list is taller than its viewport and only the rows near it are drawn.
  const drawn = await page.locator('.timeline li').count();
  assert.ok(drawn > 0 && drawn < 43, `${drawn} of 43 rows in the DOM`);
  assert.deepEqual(await timelineIds(), Array.from({ length: 43 }, (_, i) => i + 1));
  assert.equal(await state('tick'), 'completed');
  await shot('run-ticker-after-reload');
});

/**
 * The run's event stream up to and including its `count`-th event, read from the server
 * with the page's own request (its key, its Last-Event-ID): what the page would have
 * received before its connection died.
 */
async function eventsPrefix(request, count) {
  const abort = new AbortController();
  const response = await fetch(request.url(), { headers: request.headers(), signal: abort.signal });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const complete = () => text.split('\n\n').slice(0, -1).filter((b) => /^id:/m.test(b)).length;
  while (complete() < count) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  abort.abort();
  const blocks = [];
  let ids = 0;
  for (const block of text.split('\n\n')) {
    if (ids === count) break;
    blocks.push(block);
    if (/^id:/m.test(block)) ids++;
  }
  return `${blocks.join('\n\n')}\n\n`;
}

/**
 * Run a 20-item demo.ticker whose first event stream breaks off after 8 events (the
 * connection dies); then every request for events fails as offline for `offlineMs`
 * (the browser offline too when `browserOffline`), then the network is back. `retryMs`:
 * a `retry:` field in the cut stream (the server's reconnection time, which the client's
 * backoff starts from). Checks the view ends `completed` with one row per event.
 */
async function networkLoss({ offlineMs, retryMs, browserOffline }) {
  let phase = 'first';
  const requests = [];
  const context = page.context();
  await page.route('**/v1/runs/*/events*', async (route) => {
    requests.push({ phase, lastEventId: route.request().headers()['last-event-id'] });
    if (phase === 'first') {
      phase = 'offline';
      if (browserOffline) await context.setOffline(true);
      setTimeout(() => {
        phase = 'online';
        if (browserOffline) void context.setOffline(false);
      }, offlineMs);
      const prefix = await eventsPrefix(route.request(), 8);
      const body = retryMs !== undefined ? `retry: ${retryMs}\n\n${prefix}` : prefix;
      return route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store' }, body });
    }
    if (phase === 'offline') return route.abort('internetdisconnected');
    return route.continue();
  });
  try {
    await runFromForm('demo.ticker', async () => {
      await page.getByLabel('steps', { exact: true }).fill('20');
      await page.getByLabel('delay_ms', { exact: true }).fill('150');
    });
    assert.equal(await finalStatus(), 'completed');
  } finally {
    await page.unroute('**/v1/runs/*/events*');
    await context.setOffline(false);
  }
  const refused = requests.filter((r) => r.phase === 'offline');
  const back = requests.filter((r) => r.phase === 'online');
  assert.ok(refused.length >= 1 && back.length >= 1, `the view tried while offline and resumed after: ${JSON.stringify(requests)}`);
  assert.ok(back.every((r) => Number(r.lastEventId) >= 8), `resumed after the events it had: ${JSON.stringify(back)}`);
  // skill_start, 20 x (step_start, step_completed), skill_completed, done
  await page.waitForFunction(() => document.querySelector('.timeline')?.getAttribute('data-rows') === '43');
  assert.deepEqual(await timelineIds(), Array.from({ length: 43 }, (_, i) => i + 1));
  assert.equal(await state('tick'), 'completed');
  assert.equal(await page.locator('.run .error-box').count(), 0, 'no error is left on the page');
  assert.equal(await page.locator('.run .reconnecting').count(), 0, 'the reconnecting notice is gone');
  return requests;
}

test('the network lost in the middle of a 20-item demo.ticker: the view continues with one row per event', async () => {
  await networkLoss({ offlineMs: 2500 });
  await shot('run-ticker-after-network-loss');
});

test('a network loss longer than the client\'s reconnects: the view waits, says so, and continues with one row per event', async () => {
  // With `retry: 50` the client's 5 reconnects in a row are spent within about 1.5 s;
  // the browser stays offline for 5 s, so the view itself has to follow the run again.
  let noticed = false;
  const watch = setInterval(() => {
    page.locator('.run .reconnecting').count().then((n) => { noticed ||= n > 0; }, () => {});
  }, 100);
  try {
    const requests = await networkLoss({ offlineMs: 5000, retryMs: 50, browserOffline: true });
    assert.ok(requests.filter((r) => r.phase === 'offline').length >= 5, `the client spent its 5 reconnects while offline: ${JSON.stringify(requests)}`);
  } finally {
    clearInterval(watch);
  }
  assert.ok(noticed, 'the page said it was reconnecting');
});

test('demo.ticker with progress on fills the step\'s progress bar', async () => {
  await runFromForm('demo.ticker', async () => {
    await page.getByLabel('steps', { exact: true }).fill('5');
    await page.getByLabel('delay_ms', { exact: true }).fill('100');
    await page.getByLabel('progress', { exact: true }).check();
  });
  const bar = page.locator('.canvas > [data-step-id="tick"] > progress'); // the node's own bar (each item has one too)
  await bar.and(page.locator(':not([hidden])')).waitFor();
  assert.equal(await finalStatus(), 'completed');
  // Each item reports (index + 1) / steps: the latest value wins, the last item's is 1.
  assert.equal(await bar.evaluate((el) => el.value), 1);
  assert.equal(await bar.textContent(), '100%');
  await shot('run-ticker-progress');
});

test('demo.ticker with progress on: each foreach item shows its own progress in the item list', async () => {
  await runFromForm('demo.ticker', async () => {
    await page.getByLabel('steps', { exact: true }).fill('4');
    await page.getByLabel('delay_ms', { exact: true }).fill('50');
    await page.getByLabel('progress', { exact: true }).check();
  });
  assert.equal(await finalStatus(), 'completed');
  const items = page.locator('.canvas > [data-step-id="tick"] ol.items > li');
  await page.waitForFunction(() => document.querySelectorAll('.canvas > [data-step-id="tick"] ol.items > li > progress').length === 4);
  // Item i reports (i + 1) / steps, each in its own row.
  const values = await items.evaluateAll((lis) => lis.map((li) => [li.getAttribute('data-index'), li.querySelector(':scope > progress').value]));
  assert.deepEqual(values, [['0', 0.25], ['1', 0.5], ['2', 0.75], ['3', 1]]);
});

test('a foreach item\'s text shows in its row and a nested step\'s text in its node inside the group', async () => {
  await runFromForm('console.answers', async () => {});
  assert.equal(await finalStatus(), 'completed');
  const each = page.locator('.run .canvas > [data-step-id="each"]');
  const itemText = (i) => each.locator(`ol.items > li[data-index="${i}"] > pre.delta`).textContent();
  // text.extractive_answer sends its answer as a step_delta: each item its own sentence.
  assert.equal(await itemText(0), 'Cats purr.');
  assert.equal(await itemText(1), 'Dogs bark.');
  assert.equal(await itemText(2), 'Birds sing.');
  // The items' text does not go into the foreach node's own panel.
  assert.equal(await each.locator(':scope > pre.delta').isHidden(), true);
  const nested = page.locator('.run .canvas > [data-step-id="again"] [data-step-id="again/reply"] > pre.delta');
  assert.equal(await nested.textContent(), (await runFromApi()).result.outputs.nested);
  assert.equal(await nested.textContent(), 'Birds sing.');
  assert.equal(await page.locator('.run .canvas > [data-step-id="again"] > pre.delta').isHidden(), true);
  await shot('run-item-and-nested-text');
});

test('demo.chat against the fake model: the answer grows in the step\'s panel, a retried attempt\'s text is cleared', async () => {
  await runFromForm('demo.chat', async () => {
    await page.getByLabel('question', { exact: true }).fill('What do cats do?');
  });
  // The run view's panel (not the skill page's, which may still be on screen).
  const panel = page.locator('.run .canvas > [data-step-id="answer"] pre.delta');
  // Every text the panel shows, recorded as it changes (the first attempt's chunks are 0.5 s apart).
  await panel.evaluate((el) => {
    window.__shown = [];
    new MutationObserver(() => window.__shown.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
  });
  assert.equal(await finalStatus(), 'completed');
  const answer = (await runFromApi()).result.outputs.answer;
  assert.equal(answer, 'Cats purr and nap all day.');
  assert.equal(await panel.textContent(), answer);
  assert.equal(await panel.getAttribute('data-attempt'), '2');
  const shown = await page.evaluate(() => window.__shown);
  assert.ok(shown.some((t) => t.startsWith('WRONG')), `the first attempt's text was shown: ${JSON.stringify(shown)}`);
  const second = shown.slice(shown.lastIndexOf(''));
  assert.ok(shown.includes(''), `the retry cleared the panel: ${JSON.stringify(shown)}`);
  const growing = second.filter((t) => t !== '' && t !== answer);
  assert.ok(growing.length >= 2, `the answer grew chunk by chunk: ${JSON.stringify(second)}`);
  for (const t of growing) assert.ok(answer.startsWith(t), `${JSON.stringify(t)} is a prefix of the answer`);
  await shot('run-chat-text');
});

test('demo.chat when the model keeps failing: the node shows its fallback while running and ends completed', async () => {
  await runFromForm('demo.chat', async () => {
    await page.getByLabel('question', { exact: true }).fill('What do cats do?');
    await page.getByLabel('context', { exact: true }).fill('Cats purr. Dogs bark.');
  });
  const node = page.locator('.canvas > [data-step-id="answer"]');
  // While the fallback runs, the state keeps the word and the node says why.
  await page.locator('.canvas > [data-step-id="answer"][data-fallback="text.extractive_answer"]').waitFor();
  assert.equal(await finalStatus(), 'completed');
  const step = (await runFromApi()).result.steps.find((s) => s.id === 'answer');
  assert.equal(await node.getAttribute('data-state'), step.status);
  assert.equal(step.status, 'completed');
  assert.equal(await node.getAttribute('data-fallback'), 'text.extractive_answer');
  assert.match(await node.locator('.status').textContent(), /completed in .* \(by fallback text\.extractive_answer\)/);
  await shot('run-chat-fallback');
});

test('a waiting step gets an answer form from its schema; answering completes the run', async () => {
  await runFromForm('demo.approval', async () => {
    await page.getByLabel('text', { exact: true }).fill('Cats purr. Dogs bark.');
  });
  await page.locator('.canvas > [data-step-id="ask"][data-state="waiting"]').waitFor();
  assert.equal(await page.locator('[data-run-status]').getAttribute('data-run-status'), 'waiting');
  await page.getByLabel('approve', { exact: true }).check();
  await page.getByLabel('comment', { exact: true }).fill('fine');
  await shot('run-waiting');
  await page.getByRole('button', { name: 'Send answer' }).click();
  assert.equal(await finalStatus(), 'completed');
  assert.equal(await state('ask'), 'completed');
  assert.equal(await state('publish'), 'completed');
  assert.equal(await state('reject'), 'skipped');
});

test('cancel from the page ends the run cancelled', async () => {
  await runFromForm('demo.ticker', async () => {
    await page.getByLabel('steps', { exact: true }).fill('50');
    await page.getByLabel('delay_ms', { exact: true }).fill('200');
  });
  await page.waitForFunction(() => document.querySelectorAll('.timeline li').length >= 3);
  await page.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await finalStatus(), 'cancelled');
  await shot('run-cancelled');
});

test('the runs list filters by status and skill and pages', async () => {
  await page.goto(`${URL_}/ui/runs?limit=2`);
  await page.locator('table.runs').waitFor();
  assert.equal(await page.locator('table.runs tbody tr').count(), 2);
  const first = await page.locator('table.runs tbody tr').evaluateAll((r) => r.map((x) => x.dataset.runId));
  await page.getByRole('link', { name: 'Next page' }).click();
  await page.waitForURL(/cursor=/);
  await page.waitForFunction((old) => {
    const row = document.querySelector('table.runs tbody tr');
    return row && !old.includes(row.dataset.runId);
  }, first);
  const second = await page.locator('table.runs tbody tr').evaluateAll((r) => r.map((x) => x.dataset.runId));
  assert.equal(second.filter((id) => first.includes(id)).length, 0);
  await page.getByLabel('Status').selectOption('failed');
  await page.getByLabel('Skill').selectOption('demo.showcase');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/status=failed/);
  await page.waitForFunction(() => [...document.querySelectorAll('table.runs tbody tr td:nth-child(3)')].every((td) => td.textContent === 'failed'));
  const statuses = await page.locator('table.runs tbody tr td:nth-child(3)').allTextContents();
  const skills = await page.locator('table.runs tbody tr td:nth-child(2)').allTextContents();
  assert.deepEqual([...new Set(statuses)], ['failed']);
  assert.deepEqual([...new Set(skills)], ['demo.showcase']);
  await accessible('runs');
  await shot('runs');
});

test('keyboard only: sign in, open demo.ticker, fill its form, run it, cancel it', async () => {
  await page.goto(`${URL_}/ui/`);
  await page.evaluate(() => sessionStorage.clear());
  await page.reload();
  await page.getByLabel('API key').waitFor();
  // The key field has the focus when the page opens: type and press Enter.
  await page.keyboard.type(KEY);
  await page.keyboard.press('Enter');
  await page.locator('ul.skills').waitFor();
  await tabTo('a[href="skills/demo.ticker"]');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/ui\/skills\/demo\.ticker$/);
  await page.getByRole('button', { name: 'Run', exact: true }).waitFor();
  await tabTo('#input-steps');
  await page.keyboard.press('Control+A');
  await page.keyboard.type('50');
  await tabTo('#input-delay_ms');
  await page.keyboard.press('Control+A');
  await page.keyboard.type('200');
  await tabTo('#input-progress');
  await page.keyboard.press('Space');
  assert.equal(await page.locator('#input-progress').isChecked(), true);
  await tabTo('form.schema-form button[type=submit]');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/ui\/runs\/run_/);
  await page.waitForFunction(() => document.querySelectorAll('.timeline li').length >= 3);
  // The form's values went into the run: 50 items, each reporting progress.
  assert.equal(await page.locator('.canvas > [data-step-id="tick"] .counter').evaluate((el) => el.dataset.items), '50');
  await page.locator('.canvas > [data-step-id="tick"] > progress:not([hidden])').waitFor();
  await tabTo('.run-head button.danger');
  await page.keyboard.press('Space');
  assert.equal(await finalStatus(), 'cancelled');
});

test('keyboard: the graph region and a nested skill\'s group take the focus; Enter opens the group', async () => {
  await page.goto(`${URL_}/ui/skills/console.answers`);
  await page.getByRole('button', { name: 'Run', exact: true }).waitFor();
  // The graph scrolls (a wide skill overflows it): a keyboard user must be able to focus it to scroll.
  await tabTo('.graph');
  await tabTo('[data-step-id="again"] summary');
  const group = page.locator('[data-step-id="again"] details');
  assert.equal(await group.evaluate((el) => el.open), false);
  await page.keyboard.press('Enter');
  assert.equal(await group.evaluate((el) => el.open), true);
  assert.equal(await page.locator('[data-step-id="again/reply"]').isVisible(), true);
  await page.keyboard.press('Space');
  assert.equal(await group.evaluate((el) => el.open), false, 'Space closes it again');
  await shot('keyboard-group-open');
});

test('at 375 px wide the run page has no horizontal scroll of the page', async () => {
  await page.setViewportSize({ width: 375, height: 800 });
  await page.goto(`${URL_}/ui/runs`);
  await page.locator('table.runs tbody tr a').first().click();
  await finalStatus();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `page scrolls sideways by ${overflow}px`);
  await shot('run-375px');
});
