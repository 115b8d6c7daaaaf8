// Test helpers: a real `skillrun serve` process, and a TCP proxy that can drop,
// stall or answer connections itself (for resume, idle and retry tests).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, openSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const PKG = resolve(HERE, '..');
export const ROOT = resolve(PKG, '../..');
export const API_KEY = 'js-test-key-0123456789';
export const OTHER_KEY = 'js-other-key-9876543210';
export const REQUIRE_ALL = process.env.SKILLRUN_REQUIRE_ALL === '1';

/** The Python that has skillrun installed: $SKILLRUN_PYTHON, the repo's .venv (./dev), or python3. */
export function python() {
  if (process.env.SKILLRUN_PYTHON) return process.env.SKILLRUN_PYTHON;
  const venv = join(ROOT, '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

/** Start `python -m skillrun serve` on a free port; resolves once /v1/health/live answers. */
export async function startServer(env = {}) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'skillrun-js-'));
  const logPath = join(dir, 'server.log');
  const out = openSync(logPath, 'w');
  const proc = spawn(python(), ['-m', 'skillrun', 'serve', '--port', String(port)], {
    cwd: dir,
    env: {
      ...process.env,
      SKILLRUN_API_KEYS: `${API_KEY},${OTHER_KEY}`,
      SKILLRUN_RATE_LIMIT: '100000/minute',
      PYTHONUNBUFFERED: '1',
      ...env,
    },
    stdio: ['ignore', out, out],
  });
  const url = `http://127.0.0.1:${port}`;
  const log = () => readFileSync(logPath, 'utf8');
  const stop = () =>
    new Promise((done) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return done();
      proc.once('exit', () => done());
      proc.kill('SIGKILL');
    });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`server exited early:\n${log()}`);
    try {
      const r = await fetch(`${url}/v1/health/live`);
      if (r.ok) return { url, port, stop, log, proc };
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`server did not start:\n${log()}`);
}

/**
 * A TCP proxy in front of `target` (a port). `plan(n)` says what to do with the
 * n-th connection (0-based): `{}` passes it through; `{cut(text)}` forwards the
 * answer until `cut` returns a byte count, then resets the connection there;
 * `{stall(text)}` likewise but then keeps the socket open and silent;
 * `{answer: string}` answers with these raw bytes itself and closes.
 * Every connection's request text is kept in `requests`.
 */
export async function startProxy(target, plan = () => ({})) {
  const requests = [];
  const closed = [];
  const sockets = new Set();
  let n = 0;
  const server = net.createServer((client) => {
    const index = n++;
    const p = plan(index) ?? {};
    requests[index] = '';
    sockets.add(client);
    closed[index] = false;
    client.on('close', () => {
      closed[index] = true;
      sockets.delete(client);
    });
    client.on('error', () => {});
    if (p.answer !== undefined) {
      client.once('data', (d) => {
        requests[index] += d.toString('latin1');
        client.end(p.answer);
      });
      return;
    }
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.on('data', (d) => {
      requests[index] += d.toString('latin1');
      upstream.write(d);
    });
    let seen = Buffer.alloc(0);
    let stopped = false;
    const limit = p.cut ?? p.stall;
    upstream.on('data', (d) => {
      if (stopped) return;
      if (!limit) return void client.write(d);
      const before = seen.length;
      seen = Buffer.concat([seen, d]);
      const at = limit(seen.toString('latin1'));
      if (at === undefined || at >= seen.length) return void client.write(d);
      stopped = true;
      client.write(seen.subarray(before, Math.max(before, at)));
      if (p.cut) client.resetAndDestroy ? client.resetAndDestroy() : client.destroy();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    /** closed[n]: has the client side of connection n gone? */
    closed,
    get connections() {
      return n;
    },
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** The byte offset just past the `k`-th occurrence of `marker` in `text`, plus `extra`. */
export function after(text, marker, k, extra = 0) {
  let at = -1;
  for (let i = 0; i < k; i++) {
    at = text.indexOf(marker, at + 1);
    if (at < 0) return undefined;
  }
  return at + marker.length + extra;
}

/** The stream's order rules (the spec's execute_stream description). */
export function checkOrder(events) {
  const types = events.map((e) => e.type);
  if (types[0] !== 'skill_start') throw new Error(`first is ${types[0]}`);
  if (types.at(-1) !== 'done' || types.filter((t) => t === 'done').length !== 1) throw new Error('done is not last once');
  if (types.at(-2) !== 'skill_completed') throw new Error('skill_completed is not before done');
  const open = new Set();
  for (const e of events.slice(1, -2)) {
    const key = `${e.step_id}#${e.data?.index ?? ''}`;
    if (e.type === 'step_start') {
      if (open.has(key)) throw new Error(`${key} started twice`);
      open.add(key);
    } else if (['step_completed', 'step_degraded', 'step_failed'].includes(e.type)) {
      if (!open.delete(key)) throw new Error(`${e.type} for ${key} without step_start`);
    } else if (['step_waiting', 'step_retrying', 'step_fallback', 'gate_warning'].includes(e.type)) {
      if (!open.has(key)) throw new Error(`${e.type} for ${key} outside its step`);
    } else if (e.type !== 'step_skipped') throw new Error(`unexpected ${e.type}`);
  }
  if (open.size) throw new Error(`steps never ended: ${[...open]}`);
}
