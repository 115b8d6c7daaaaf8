// The longest main-thread task while the console shows a demo.ticker run of N items
// (a PerformanceObserver on `longtask`, installed before the page's own script).
// Usage: SKILLRUN_URL=… SKILLRUN_KEY=… node bench/longtask.mjs N [N …]; prints one JSON line per N.
// bench/console.py starts the server and prints the ratios.
import { chromium } from 'playwright-core';

const URL_ = process.env.SKILLRUN_URL;
const KEY = process.env.SKILLRUN_KEY;
const CHROMIUM = process.env.SKILLRUN_CHROMIUM ?? '/usr/bin/chromium';

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
try {
  for (const steps of process.argv.slice(2).map(Number)) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.addInitScript((key) => {
      sessionStorage.setItem('skillrun.apiKey', key);
      window.__longest = 0;
      window.__tasks = 0;
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          window.__tasks++;
          window.__longest = Math.max(window.__longest, e.duration);
        }
      }).observe({ type: 'longtask', buffered: true });
    }, KEY);
    const page = await context.newPage();
    const r = await fetch(`${URL_}/v1/skills/demo.ticker/execute/async`, {
      method: 'POST',
      headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: { steps, delay_ms: 0 } }),
    });
    const { run_id: runId } = await r.json();
    const started = Date.now();
    await page.goto(`${URL_}/ui/runs/${runId}`);
    await page.waitForFunction(
      (n) => document.querySelector('[data-run-status]')?.getAttribute('data-run-status') === 'completed'
        && document.querySelector('.timeline')?.getAttribute('data-rows') === String(n),
      2 * steps + 3, { timeout: 300_000, polling: 200 },
    );
    const shownMs = Date.now() - started;
    const { longest, tasks, rendered } = await page.evaluate(() => ({
      longest: window.__longest, tasks: window.__tasks, rendered: document.querySelectorAll('.timeline li').length,
    }));
    console.log(JSON.stringify({ steps, events: 2 * steps + 3, longest_task_ms: Math.round(longest), long_tasks: tasks, shown_ms: shownMs, rows_in_dom: rendered }));
    await context.close();
  }
} finally {
  await browser.close();
}
