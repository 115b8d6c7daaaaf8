/**
 * The console's entry: sign-in, routing (`./`, `skills/{id}`, `runs`, `runs/{id}`
 * relative to <base href>, which the server sets to where it serves /ui/), pages.
 * The API key lives in sessionStorage only; every call goes through the JS client.
 */
import {
  AuthenticationError,
  ValidationError,
  createClient,
  type Client,
  type RunStatus,
  type SkillDescription,
} from './api.js';
import { h } from './dom.js';
import { SchemaForm, type FieldSchema } from './form.js';
import { Graph } from './graph.js';
import { RunView } from './run.js';

const KEY = 'skillrun.apiKey';
const STATUSES: RunStatus[] = ['queued', 'running', 'waiting', 'completed', 'failed', 'cancelled', 'interrupted'];

class Console {
  readonly #app: HTMLElement;
  readonly #base: URL;
  #client: Client | undefined;
  #run: RunView | undefined;

  constructor() {
    this.#app = document.getElementById('app') as HTMLElement;
    this.#base = new URL(document.baseURI);
    const key = sessionStorage.getItem(KEY);
    if (key) this.#client = this.#makeClient(key);
    document.addEventListener('click', (ev) => this.#onClick(ev));
    window.addEventListener('popstate', () => void this.route());
    document.getElementById('signout')?.addEventListener('click', () => this.#signOut(''));
  }

  #makeClient(apiKey: string): Client {
    // The API is served next to /ui/: one level up from the base.
    return createClient({ baseUrl: new URL('..', this.#base).href, apiKey });
  }

  #onClick(ev: MouseEvent): void {
    const a = (ev.target as Element | null)?.closest('a[data-link]');
    if (!(a instanceof HTMLAnchorElement) || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
    ev.preventDefault();
    this.go(a.href);
  }

  go(href: string): void {
    history.pushState(null, '', href);
    void this.route();
  }

  /** The path below the base, e.g. `runs/run_x`. */
  #path(): string {
    const path = location.pathname;
    return path.startsWith(this.#base.pathname) ? decodeURIComponent(path.slice(this.#base.pathname.length)) : '';
  }

  async route(): Promise<void> {
    this.#run?.close();
    this.#run = undefined;
    const client = this.#client;
    (document.getElementById('signout') as HTMLElement).hidden = !client;
    if (!client) return this.#signIn('');
    const parts = this.#path().split('/').filter(Boolean);
    try {
      if (parts[0] === 'skills' && parts[1]) await this.#skillPage(client, parts[1]);
      else if (parts[0] === 'runs' && parts[1]) await this.#runPage(client, parts[1]);
      else if (parts[0] === 'runs') await this.#runsPage(client);
      else await this.#skillsPage(client);
    } catch (err) {
      if (err instanceof AuthenticationError) return this.#signOut('The server refused this API key (401). Enter a valid key.');
      this.#show('Error', h('div', { class: 'error-box', role: 'alert' }, String(err)));
    }
  }

  #show(title: string, ...content: Node[]): void {
    document.title = `${title} · Skillrun console`;
    this.#app.replaceChildren(h('h1', {}, title), ...content);
    this.#app.focus({ preventScroll: true });
  }

  #signOut(message: string): void {
    sessionStorage.removeItem(KEY);
    this.#client = undefined;
    (document.getElementById('signout') as HTMLElement).hidden = true;
    this.#signIn(message);
  }

  #signIn(message: string): void {
    const input = h('input', { id: 'api-key', type: 'password', autocomplete: 'off', required: true });
    const error = h('p', { class: 'form-error', role: 'alert', id: 'signin-error' }, message);
    input.setAttribute('aria-describedby', 'signin-error');
    const form = h('form', { class: 'signin' }, h('label', { for: 'api-key' }, 'API key'), input, h('button', { type: 'submit', class: 'primary' }, 'Sign in'), error);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.#trySignIn(input.value.trim(), error);
    });
    this.#show('Sign in', h('p', {}, 'The console calls the API with your key; it is kept in this tab only (sessionStorage).'), form);
    input.focus();
  }

  async #trySignIn(key: string, error: HTMLElement): Promise<void> {
    if (!key) {
      error.textContent = 'Enter an API key.';
      return;
    }
    const client = this.#makeClient(key);
    try {
      await client.skills.list();
    } catch (err) {
      error.textContent = err instanceof AuthenticationError ? 'The server refused this API key (401).' : `Could not sign in: ${String(err)}`;
      return;
    }
    sessionStorage.setItem(KEY, key);
    this.#client = client;
    await this.route();
  }

  async #skillsPage(client: Client): Promise<void> {
    const { skills } = await client.skills.list();
    const described = await Promise.all(skills.map((s) => client.skills.get(s.id)));
    const list = h('ul', { class: 'skills' });
    for (const s of described) {
      list.append(h('li', {},
        h('h2', {}, h('a', { href: `skills/${encodeURIComponent(s.id)}`, 'data-link': true }, s.id), ' ', h('span', { class: 'version' }, s.version)),
        h('p', {}, s.description),
        h('p', { class: 'steps' }, 'Steps: ', s.steps.map((st) => st.id).join(' → '))));
    }
    this.#show('Skills', list);
  }

  /** The skill and the nested skills its steps run (for their groups). */
  async #describe(client: Client, skillId: string): Promise<[SkillDescription, Map<string, SkillDescription>]> {
    const skill = await client.skills.get(skillId);
    const nested = new Map<string, SkillDescription>();
    let todo = skill.steps.map((s) => s.skill).filter((x): x is string => !!x);
    while (todo.length) {
      const found = await Promise.all(todo.filter((id) => !nested.has(id)).map((id) => client.skills.get(id)));
      for (const d of found) nested.set(d.id, d);
      todo = found.flatMap((d) => d.steps.map((s) => s.skill)).filter((x): x is string => !!x && !nested.has(x));
    }
    return [skill, nested];
  }

  async #skillPage(client: Client, skillId: string): Promise<void> {
    const [skill, nested] = await this.#describe(client, skillId);
    const graph = new Graph(skill, nested);
    const form: SchemaForm = new SchemaForm(skill.inputs as FieldSchema, 'input', 'Run', (inputs) => {
      client.executeAsync(skill.id, { inputs }).then(
        (run) => this.go(new URL(`runs/${encodeURIComponent(run.run_id)}`, this.#base).href),
        (err: unknown) => {
          if (err instanceof ValidationError) form.showErrors(err.errors, 'inputs');
          else if (err instanceof AuthenticationError) this.#signOut('The server refused this API key (401).');
          else form.showError(String(err));
        },
      );
    });
    this.#show(skill.id,
      h('p', {}, skill.description),
      h('div', { class: 'skill-body' },
        h('section', { class: 'run-form', 'aria-label': 'Run this skill' }, h('h2', {}, 'Inputs'), form.element),
        h('section', { class: 'graph-wrap' }, h('h2', {}, 'Steps'), graph.element)));
    graph.layout();
  }

  async #runPage(client: Client, runId: string): Promise<void> {
    const run = await client.runs.get(runId);
    const [skill, nested] = await this.#describe(client, run.skill_id);
    const graph = new Graph(skill, nested);
    const view = new RunView(client, runId, skill, graph, run.status);
    this.#run = view;
    this.#show(`Run of ${skill.id}`, view.element);
    graph.layout();
    await view.follow();
  }

  async #runsPage(client: Client): Promise<void> {
    const params = new URLSearchParams(location.search);
    const status = params.get('status') ?? '';
    const skillId = params.get('skill_id') ?? '';
    const cursor = params.get('cursor') ?? '';
    const [{ skills }, page] = await Promise.all([
      client.skills.list(),
      client.runs.list({
        limit: Number(params.get('limit') ?? 20),
        ...(status ? { status: status as RunStatus } : {}),
        ...(skillId ? { skill_id: skillId } : {}),
        ...(cursor ? { cursor } : {}),
      }),
    ]);
    const statusSel = h('select', { id: 'filter-status', name: 'status' }, h('option', { value: '' }, 'any'), ...STATUSES.map((s) => h('option', { value: s, selected: s === status }, s)));
    const skillSel = h('select', { id: 'filter-skill', name: 'skill_id' }, h('option', { value: '' }, 'any'), ...skills.map((s) => h('option', { value: s.id, selected: s.id === skillId }, s.id)));
    const filters = h('form', { class: 'filters' },
      h('label', { for: 'filter-status' }, 'Status'), statusSel,
      h('label', { for: 'filter-skill' }, 'Skill'), skillSel,
      h('button', { type: 'submit' }, 'Filter'));
    filters.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.go(this.#runsUrl({ status: statusSel.value, skill_id: skillSel.value, limit: params.get('limit') ?? '' }));
    });
    const rows = page.runs.map((r) => h('tr', { 'data-run-id': r.run_id },
      h('td', {}, h('a', { href: `runs/${encodeURIComponent(r.run_id)}`, 'data-link': true }, r.run_id)),
      h('td', {}, r.skill_id),
      h('td', {}, h('span', { class: `run-status s-${r.status}` }, r.status)),
      h('td', {}, new Date(r.created_at).toLocaleString())));
    const table = h('table', { class: 'runs' },
      h('caption', {}, 'Your runs, newest first'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Run'), h('th', { scope: 'col' }, 'Skill'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Created'))),
      h('tbody', {}, ...rows));
    const nav = h('nav', { class: 'pager', 'aria-label': 'Pages' },
      cursor ? h('a', { href: this.#runsUrl({ status, skill_id: skillId, limit: params.get('limit') ?? '' }), 'data-link': true }, 'First page') : null,
      page.next_cursor ? h('a', { href: this.#runsUrl({ status, skill_id: skillId, limit: params.get('limit') ?? '', cursor: page.next_cursor }), 'data-link': true, rel: 'next' }, 'Next page') : null);
    this.#show('Runs', filters, page.runs.length ? table : h('p', {}, 'No runs match.'), nav);
  }

  #runsUrl(query: Record<string, string>): string {
    const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v));
    const s = q.toString();
    return new URL(`runs${s ? `?${s}` : ''}`, this.#base).href;
  }
}

void new Console().route();
