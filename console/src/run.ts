/**
 * A run's live view: the skill's graph taking each event's state, a timeline with
 * one row per event (`data-event-id`; virtualised, see timeline.ts), a bar per step, the outputs as a JSON tree.
 * Events come from the JS client's `runs.events` (it resumes with Last-Event-ID
 * when the connection drops); the rows seen are kept in sessionStorage, so a reload
 * continues after the last one instead of replaying the whole log.
 */
import { APIConnectionError, APIError, StreamError, type Client, type SkillDescription, type StepPlace, type StreamEvent } from './api.js';
import { SchemaForm, type FieldSchema } from './form.js';
import { type Graph, type NodeParts } from './graph.js';
import { h, ms } from './dom.js';
import { jsonTree } from './json.js';
import { Timeline } from './timeline.js';
// The JS client's own text rules (what `stream.text()` yields), fed every event this view
// applies, including those replayed from sessionStorage after a reload.
import { StepTexts, type TextChunk } from '../../clients/js/src/text.js';

type Ended = 'completed' | 'skipped' | 'degraded' | 'failed';
type State = 'pending' | 'running' | 'retrying' | 'waiting' | Ended;
const ENDED = new Set<string>(['completed', 'skipped', 'degraded', 'failed', 'cancelled', 'interrupted']);
const YIELD_EVERY = 200; // events handled per task
const ITEM_LIMIT = 500; // foreach items drawn in a node
const CACHE_LIMIT = 3000; // events kept for a reload; past it a reload replays the log
const RESUME_MIN_MS = 1000; // the view's own waits before following again, once the client gave up
const RESUME_MAX_MS = 15_000;

interface Cached {
  id: string;
  event: StreamEvent;
}

/** One thing with a state: a node, a foreach item, a nested step. */
interface Target {
  el: HTMLElement;
  status: HTMLElement;
  started?: number | undefined;
  /** Its text so far (`step_delta` text), made when the first text arrives. */
  delta?: HTMLElement | undefined;
  /** Its `delta.progress`, made when the first progress arrives. */
  progress?: HTMLProgressElement | undefined;
}

export class RunView {
  readonly element: HTMLElement;
  readonly #client: Client;
  readonly #runId: string;
  readonly #graph: Graph;
  readonly #statusEl: HTMLElement;
  readonly #timeline = new Timeline();
  readonly #gantt: HTMLElement;
  readonly #result: HTMLElement;
  readonly #cancel: HTMLButtonElement;
  readonly #seen = new Set<string>();
  readonly #targets = new Map<string, Target>();
  readonly #bars = new Map<string, { start: number; end?: number; state: string }>();
  readonly #cache: Cached[] = [];
  #t0: number | undefined;
  #abort = new AbortController();
  #ticker: number | undefined;
  #saveTimer: number | undefined;
  readonly #itemStates = new Map<string, Map<number, string>>();
  readonly #texts = new StepTexts();
  /** The last event's id: where following resumes. */
  #lastId: string | undefined;
  readonly #notice = h('p', { class: 'reconnecting', role: 'status' }, 'Connection lost: reconnecting…');

  constructor(client: Client, runId: string, skill: SkillDescription, graph: Graph, initialStatus: string) {
    this.#client = client;
    this.#runId = runId;
    this.#graph = graph;
    this.#statusEl = h('strong', { 'data-run-status': initialStatus, class: `run-status s-${initialStatus}` }, initialStatus);
    this.#cancel = h('button', { type: 'button', class: 'danger' }, 'Cancel');
    this.#cancel.addEventListener('click', () => void this.#doCancel());
    this.#gantt = h('div', { class: 'gantt', 'aria-label': 'Step timing' });
    this.#result = h('div', { class: 'result' });
    this.element = h(
      'div',
      { class: 'run' },
      h('p', { class: 'run-head' }, 'Run ', h('code', {}, runId), ' of ', h('a', { href: `skills/${encodeURIComponent(skill.id)}`, 'data-link': true }, skill.id), ': ', this.#statusEl, ' ', this.#cancel),
      this.#result,
      h('div', { class: 'run-body' }, graph.element, h('section', { class: 'side' }, h('h2', {}, 'Timeline'), this.#gantt, this.#timeline.element)),
    );
    if (ENDED.has(initialStatus)) {
      // A finished run: its status is shown with its `done`, once the graph shows
      // what the events say (a reader of data-run-status then sees the final nodes).
      this.#statusEl.removeAttribute('data-run-status');
      this.#statusEl.textContent = 'replaying…';
      this.#cancel.hidden = true;
    } else this.#setStatus(initialStatus);
  }

  /** Show what this tab saw before a reload, then follow the log after it. */
  async follow(): Promise<void> {
    const key = `skillrun.run.${this.#runId}`;
    const cached = readCache(key);
    this.#cache.push(...cached);
    for (const c of cached) this.#apply(c.id, c.event);
    this.#lastId = cached.length ? cached[cached.length - 1]?.id : undefined;
    this.#ticker = window.setInterval(() => this.#tick(), 500);
    window.addEventListener('pagehide', () => this.#save(key));
    try {
      // The client resumes a dropped stream itself, on a budget of reconnects in a row; a
      // longer network loss outlasts it. The view then waits (for the browser to be back
      // online, or a while) and follows again after the last event it has: a run's page
      // never gives up on a run that has not ended.
      for (let lost = 0; !(await this.#stream(key)); lost++) {
        this.#reconnecting(true);
        await this.#waitToResume(lost);
      }
    } finally {
      this.#reconnecting(false);
      window.clearInterval(this.#ticker);
      this.#tick();
    }
  }

  /** One stream of the run's events after the last one seen: true when it ended (or was closed), false when the connection was lost. */
  async #stream(key: string): Promise<boolean> {
    const after = this.#lastId;
    const stream = this.#client.runs.events(this.#runId, { signal: this.#abort.signal, ...(after !== undefined ? { after } : {}) });
    let count = 0;
    try {
      for await (const event of stream) {
        const id = stream.lastEventId ?? String(this.#seen.size + 1);
        this.#reconnecting(false);
        this.#apply(id, event);
        this.#remember(key, id, event);
        this.#lastId = id;
        // A replay delivers thousands of buffered events at once: hand the main thread
        // back now and then, so the page stays responsive while it catches up.
        if (++count % YIELD_EVERY === 0) await new Promise((resolve) => setTimeout(resolve, 0));
      }
    } catch (err) {
      if (this.#abort.signal.aborted) return true;
      if (connectionLost(err)) return false;
      this.#showError(`The stream failed: ${String(err)}`);
    }
    return true;
  }

  /** Until the browser is online again (or, online, a growing while); at once when the view closes. */
  #waitToResume(lost: number): Promise<void> {
    const signal = this.#abort.signal;
    return new Promise((resolve) => {
      const done = (): void => {
        window.clearTimeout(timer);
        window.removeEventListener('online', done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const wait = navigator.onLine ? Math.min(RESUME_MAX_MS, RESUME_MIN_MS * 2 ** lost) : RESUME_MAX_MS;
      const timer = window.setTimeout(done, wait);
      window.addEventListener('online', done);
      signal.addEventListener('abort', done);
    });
  }

  /** Say (politely, once) that the view lost the run's stream and is trying again. */
  #reconnecting(on: boolean): void {
    if (on && !this.#notice.isConnected) this.#result.prepend(this.#notice);
    else if (!on && this.#notice.isConnected) this.#notice.remove();
  }

  close(): void {
    this.#abort.abort();
    window.clearInterval(this.#ticker);
  }

  #remember(key: string, id: string, event: StreamEvent): void {
    if (this.#cache.length >= CACHE_LIMIT) {
      if (this.#cache.length === CACHE_LIMIT) sessionStorage.removeItem(key); // too long: a reload replays the log
      this.#cache.length = CACHE_LIMIT + 1;
      return;
    }
    this.#cache.push({ id, event });
    // Written at most every 250 ms: serialising the whole list per event would grow quadratically.
    if (this.#saveTimer !== undefined) return;
    this.#saveTimer = window.setTimeout(() => {
      this.#saveTimer = undefined;
      this.#save(key);
    }, 250);
  }

  #save(key: string): void {
    if (this.#cache.length > CACHE_LIMIT) return;
    try {
      sessionStorage.setItem(key, JSON.stringify(this.#cache));
    } catch {
      sessionStorage.removeItem(key);
    }
  }

  #apply(id: string, event: StreamEvent): void {
    if (this.#seen.has(id)) return; // one row per event, whatever a resume repeats
    this.#seen.add(id);
    const at = eventTime(event);
    this.#t0 ??= at;
    this.#row(id, event, at);
    for (const chunk of this.#texts.observe(event)) this.#text(chunk);
    this.#state(event, at);
  }

  #row(id: string, event: StreamEvent, at: number): void {
    const type = event.type === 'unknown' ? event.event_type : event.type;
    const step = 'step_id' in event && event.step_id ? event.step_id : '';
    const place = stepPlace(event);
    const where = step + (place?.index !== undefined ? `[${place.index}]` : '');
    const message = event.type === 'done' ? `Run ${event.status}.` : event.message;
    this.#timeline.push({ id, type, at: `+${ms(at - (this.#t0 ?? at))}`, where, message });
  }

  #state(event: StreamEvent, at: number): void {
    switch (event.type) {
      case 'skill_start':
      case 'skill_resumed':
        this.#setStatus('running');
        return;
      case 'done':
        this.#done(event.status, event.outputs, event.error, event.steps);
        return;
      case 'skill_completed':
      case 'unknown':
        return;
      default:
        this.#stepEvent(event, at);
    }
  }

  #stepEvent(event: Exclude<StreamEvent, { type: 'skill_start' | 'skill_resumed' | 'done' | 'skill_completed' | 'unknown' }>, at: number): void {
    const place: StepPlace = event.data;
    const target = this.#target(event.step_id, place);
    if (!target) return;
    switch (event.type) {
      case 'step_start':
        target.started = at;
        this.#set(target, 'running', 'running');
        if (event.data.items !== undefined) this.#items(event.step_id, event.data.items);
        break;
      case 'step_retrying':
        this.#set(target, 'retrying', `retrying: attempt ${event.data.attempt} failed (${event.data.error.kind}), again in ${ms(event.data.delay_ms)}`);
        break;
      case 'step_fallback':
        target.el.dataset['fallback'] = event.data.uses;
        this.#set(target, 'running', `fallback ${event.data.uses} after ${event.data.error.kind}: ${event.data.error.message}`);
        break;
      case 'gate_warning':
        target.status.append(h('span', { class: 'warn' }, ` gate ${event.data.gate} warned: ${findings(event.data.findings)}`));
        break;
      case 'step_waiting':
        this.#set(target, 'waiting', `waiting: ${event.data.prompt}`);
        this.#setStatus('waiting');
        this.#answerForm(event.step_id, place.index, event.data.schema as FieldSchema, target);
        break;
      case 'step_delta':
        this.#progress(event.step_id, place, target, event.data.delta.progress);
        break;
      case 'step_completed':
        this.#end(target, 'completed', `completed in ${ms(event.data.duration_ms)}`, at);
        break;
      case 'step_skipped':
        if (event.data.items !== undefined) this.#items(event.step_id, event.data.items);
        this.#end(target, 'skipped', `skipped: ${event.data.reason}${event.data.condition ? ` (when ${event.data.condition})` : ''}`, at);
        break;
      case 'step_degraded':
        this.#end(target, 'degraded', `degraded by gate ${event.data.gate}: ${findings(event.data.findings)}`, at);
        break;
      case 'step_failed':
        this.#end(target, 'failed', `failed: ${event.data.error.kind}: ${event.data.error.message}`, at);
        break;
    }
    if (this.#statusEl.dataset['runStatus'] === 'waiting' && event.type !== 'step_waiting' && event.type !== 'step_delta') {
      if (![...this.#targets.values()].some((t) => t.el.dataset['state'] === 'waiting')) this.#setStatus('running');
    }
    this.#bar(event.step_id, place, event.type, at);
    if (place.index !== undefined && !event.step_id.includes('/')) this.#aggregate(event.step_id, place.index, target.el.dataset['state'] ?? 'pending');
    this.#graph.relayout();
  }

  /** The element an event is about: a node, a foreach item, or a nested step. */
  #target(stepId: string, place: StepPlace): Target | undefined {
    const key = place.index !== undefined ? `${stepId}#${place.index}` : stepId;
    const known = this.#targets.get(key);
    if (known) return known;
    const top = this.#graph.parts.get(stepId.split(/[/[]/)[0] ?? stepId);
    if (!top) return undefined;
    let target: Target;
    if (!stepId.includes('/') && place.index === undefined) target = { el: top.node, status: top.status };
    else if (!stepId.includes('/')) target = this.#itemTarget(top, stepId, place.index ?? 0);
    else target = this.#nestedTarget(top, stepId);
    this.#targets.set(key, target);
    return target;
  }

  #itemTarget(top: NodeParts, stepId: string, index: number): Target {
    const status = h('span', { class: 'status' }, 'pending');
    const el = h('li', { 'data-step-id': stepId, 'data-index': String(index), 'data-state': 'pending' }, h('span', { class: 'ix' }, `#${index}`), ' ', status);
    const list = top.items;
    // In order is the common case: append. Past ITEM_LIMIT items the list stops
    // growing (the counter still counts every item): 10,000 rows in a node help nobody.
    if (list && list.childElementCount < ITEM_LIMIT) {
      const last = list.lastElementChild;
      const later = last === null || Number(last.getAttribute('data-index')) < index
        ? undefined
        : Array.from(list.children).find((c) => Number(c.getAttribute('data-index')) > index);
      list.insertBefore(el, later ?? null);
    }
    return { el, status };
  }

  #nestedTarget(top: NodeParts, stepId: string): Target {
    const existing = top.node.querySelector<HTMLElement>(`[data-step-id="${CSS.escape(stepId)}"]`);
    if (existing) return { el: existing, status: existing.querySelector<HTMLElement>('.status') ?? existing };
    const status = h('span', { class: 'status' }, 'pending');
    const el = h('div', { class: 'nested-step', 'data-step-id': stepId, 'data-state': 'pending' }, h('code', {}, stepId), ' ', status);
    const parentItem = /^([^/[]+)\[(\d+)\]\//.exec(stepId);
    const item = parentItem ? top.items?.querySelector<HTMLElement>(`li[data-index="${parentItem[2]}"]`) : null;
    (item ?? top.children ?? top.node).append(el);
    return { el, status };
  }

  #set(t: Target, state: State, text: string): void {
    t.el.dataset['state'] = state;
    t.status.textContent = text;
  }

  #end(t: Target, state: Ended, text: string, at: number): void {
    // The state is the StepStatus word; that a fallback made the outcome stays said.
    const fallback = t.el.dataset['fallback'];
    this.#set(t, state, fallback !== undefined ? `${text} (by fallback ${fallback})` : text);
    t.started = undefined;
    void at;
  }

  #items(stepId: string, count: number): void {
    const top = this.#graph.parts.get(stepId);
    if (top?.counter) top.counter.dataset['items'] = String(count);
  }

  /** A foreach node's own state, from its items' states (kept per index, not read from the DOM). */
  #aggregate(stepId: string, index: number, itemState: string): void {
    const top = this.#graph.parts.get(stepId);
    if (!top?.counter) return;
    const states = this.#itemStates.get(stepId) ?? new Map<number, string>();
    this.#itemStates.set(stepId, states);
    states.set(index, itemState);
    const count = { ended: 0, waiting: 0, retrying: 0, failed: 0, degraded: 0, skipped: 0 };
    for (const s of states.values()) {
      if (ENDED.has(s)) count.ended++;
      if (s in count) count[s as keyof typeof count]++;
    }
    const total = Number(top.counter.dataset['items'] ?? states.size);
    top.counter.textContent = `${count.ended}/${total} items done`;
    let state: State;
    if (count.waiting) state = 'waiting';
    else if (count.retrying) state = 'retrying';
    else if (count.ended < total) state = 'running';
    else if (count.failed) state = 'failed';
    else if (count.degraded) state = 'degraded';
    else if (count.skipped === states.size) state = 'skipped';
    else state = 'completed';
    top.node.dataset['state'] = state;
    top.status.textContent = state;
  }

  /**
   * A step's text as the client's rules make it: a restart (a failed attempt) clears it.
   * Each has its own place: a top-level step its node's panel, a foreach item its row
   * in the node's item list, a nested step its node inside the group.
   */
  #text(chunk: TextChunk): void {
    const panel = this.#deltaPanel(chunk.stepId, chunk.index);
    if (!panel) return;
    panel.hidden = false;
    panel.dataset['attempt'] = String(chunk.attempt);
    if (chunk.restart) panel.textContent = '';
    else panel.append(chunk.text); // a text node per chunk: no re-serialising what is shown
    if (chunk.index !== undefined || chunk.stepId.includes('/')) this.#graph.relayout();
  }

  #deltaPanel(stepId: string, index: number | undefined): HTMLElement | undefined {
    const top = this.#graph.parts.get(stepId);
    if (top && index === undefined) return top.delta;
    const target = this.#target(stepId, index !== undefined ? { index } : {});
    if (!target) return undefined;
    // A nested step drawn from the skill's description already has its panel.
    target.delta ??= target.el.querySelector<HTMLElement>(':scope > pre.delta') ?? undefined;
    if (!target.delta) {
      target.delta = h('pre', { class: 'delta', hidden: true, 'aria-label': `Output of ${stepId}${index !== undefined ? ` item ${index}` : ''} so far` });
      target.el.append(target.delta);
    }
    return target.delta;
  }

  /**
   * `delta.progress`: a top-level step's bar shows the latest value of the step or of
   * any of its foreach items; an item (or nested step) also gets a bar of its own.
   */
  #progress(stepId: string, place: StepPlace, target: Target, value: number | undefined): void {
    if (value === undefined) return;
    const top = this.#graph.parts.get(stepId);
    if (top) showProgress(top.progress, value);
    if (place.index === undefined && !stepId.includes('/')) return;
    target.progress ??= target.el.querySelector<HTMLProgressElement>(':scope > progress') ?? undefined;
    if (!target.progress) {
      target.progress = h('progress', { class: 'progress', max: '1', value: '0', 'aria-label': `Progress of ${stepId}${place.index !== undefined ? ` item ${place.index}` : ''}` });
      target.el.append(target.progress);
    }
    showProgress(target.progress, value);
  }

  #answerForm(stepId: string, index: number | undefined, schema: FieldSchema, target: Target): void {
    const top = this.#graph.parts.get(stepId.split(/[/[]/)[0] ?? stepId);
    if (!top) return;
    const form: SchemaForm = new SchemaForm(schema, `answer-${stepId.replace(/[^a-z0-9]/gi, '-')}`, 'Send answer', (value) => {
      this.#client.runs.input(this.#runId, stepId, value, index).then(
        () => form.element.remove(),
        (err: unknown) => {
          const fields = (err as { errors?: { field: string; message: string }[] }).errors;
          if (fields?.length) form.showErrors(fields, 'value');
          else form.showError(String(err));
        },
      );
    });
    top.answer.replaceChildren(h('p', {}, target.status.textContent ?? ''), form.element);
  }

  #bar(stepId: string, place: StepPlace, type: string, at: number): void {
    if (stepId.includes('/')) return;
    const bar = this.#bars.get(stepId) ?? { start: at, state: 'running' };
    if (ENDED.has(type.replace('step_', ''))) {
      bar.end = Math.max(bar.end ?? at, at);
      bar.state = type.replace('step_', '');
    }
    void place;
    this.#bars.set(stepId, bar);
  }

  #tick(): void {
    const now = Date.now();
    for (const t of this.#targets.values()) {
      if (t.started !== undefined && t.el.dataset['state'] === 'running' && !t.el.dataset['fallback']) {
        t.status.textContent = `running ${ms(Math.max(0, now - t.started))}`;
      }
    }
    this.#drawGantt(now);
  }

  #drawGantt(now: number): void {
    if (this.#t0 === undefined) return;
    const t0 = this.#t0;
    const live = !ENDED.has(this.#statusEl.dataset['runStatus'] ?? '');
    const endAll = Math.max(...[...this.#bars.values()].map((b) => b.end ?? (live ? now : b.start)), t0 + 1);
    const span = endAll - t0;
    this.#gantt.replaceChildren(...[...this.#bars].map(([id, b]) => {
      const left = ((b.start - t0) / span) * 100;
      const width = Math.max(0.5, (((b.end ?? (live ? now : b.start)) - b.start) / span) * 100);
      const bar = h('span', { class: `bar s-${b.state}` });
      bar.style.marginLeft = `${left}%`;
      bar.style.width = `${Math.min(width, 100 - left)}%`;
      return h('div', { class: 'gantt-row' }, h('span', { class: 'gantt-id' }, id), h('span', { class: 'gantt-track' }, bar));
    }));
  }

  #setStatus(status: string): void {
    this.#statusEl.dataset['runStatus'] = status;
    this.#statusEl.className = `run-status s-${status}`;
    this.#statusEl.textContent = status;
    this.#cancel.hidden = ENDED.has(status);
  }

  #done(status: string, outputs: unknown, error: { kind: string; message: string } | undefined, steps: { id: string; status: string }[]): void {
    for (const s of steps) {
      const part = this.#graph.parts.get(s.id);
      if (part && ENDED.has(s.status)) {
        const state = s.status === 'cancelled' || s.status === 'interrupted' ? 'failed' : s.status;
        if (!ENDED.has(part.node.dataset['state'] ?? '') || part.items) part.node.dataset['state'] = state;
      }
    }
    this.#setStatus(status);
    if (error) this.#showError(`The run ${status}: ${error.kind}: ${error.message}`);
    this.#result.append(h('section', { class: 'outputs' }, h('h2', {}, 'Outputs'), jsonTree(outputs)));
    for (const p of this.#graph.parts.values()) p.answer.replaceChildren();
  }

  #showError(text: string): void {
    this.#result.prepend(h('div', { class: 'error-box', role: 'alert' }, text));
  }

  async #doCancel(): Promise<void> {
    this.#cancel.disabled = true;
    try {
      await this.#client.runs.cancel(this.#runId);
    } catch (err) {
      this.#showError(`Cancel failed: ${String(err)}`);
    } finally {
      this.#cancel.disabled = false;
    }
  }
}

/** A failure of the network (or a server briefly unavailable), not of the run or the request. */
function connectionLost(err: unknown): boolean {
  const cause = err instanceof StreamError ? err.cause : err;
  return cause instanceof APIConnectionError || (cause instanceof APIError && [429, 502, 503, 504].includes(cause.status));
}

function showProgress(bar: HTMLProgressElement, value: number): void {
  bar.hidden = false;
  bar.value = value;
  bar.textContent = `${Math.round(value * 100)}%`;
}

function stepPlace(event: StreamEvent): (StepPlace & { items?: number }) | undefined {
  if (event.type === 'unknown' || event.type === 'done' || event.type === 'skill_start' || event.type === 'skill_resumed' || event.type === 'skill_completed') return undefined;
  return event.data;
}

function eventTime(event: StreamEvent): number {
  const raw = event.type === 'unknown' ? event.raw['timestamp'] : 'timestamp' in event ? event.timestamp : undefined;
  const t = typeof raw === 'string' ? Date.parse(raw) : NaN;
  return Number.isNaN(t) ? Date.now() : t;
}

function findings(list: { kind: string; count?: number }[] | undefined): string {
  return (list ?? []).map((f) => `${f.kind}${f.count !== undefined ? ` ×${f.count}` : ''}`).join(', ') || 'findings';
}

function readCache(key: string): Cached[] {
  try {
    const raw = sessionStorage.getItem(key);
    return raw ? (JSON.parse(raw) as Cached[]) : [];
  } catch {
    return [];
  }
}
