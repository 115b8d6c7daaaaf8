/**
 * A skill's graph from `GET /v1/skills/{id}`: one node per step (`data-step-id`,
 * `data-state`), edges from `after`, laid out by dagre. A nested `skill:` step is a
 * collapsible group holding the nested skill's steps; a `foreach` step one node with
 * a counter and its items listed inside.
 */
import dagre from '@dagrejs/dagre';
import type { SkillDescription, SkillStep } from './api.js';
import { h } from './dom.js';

const NODE_WIDTH = 230;

export interface NodeParts {
  node: HTMLElement;
  status: HTMLElement;
  counter: HTMLElement | null;
  items: HTMLOListElement | null;
  children: HTMLElement | null;
  delta: HTMLElement;
  /** How far the step is (`step_delta`'s `delta.progress`), hidden until it says. */
  progress: HTMLProgressElement;
  answer: HTMLElement;
}

function badges(step: SkillStep): HTMLElement {
  const list = h('ul', { class: 'badges' });
  const add = (cls: string, text: string): void => void list.append(h('li', { class: cls }, text));
  if (step.when) add('when', `when ${step.when}`);
  for (const g of step.gates ?? []) add('gate', `gate ${g.uses} (${g.stage}, ${g.policy})`);
  if (step.retry) add('retry', `retry ×${step.retry.max_attempts}`);
  if (step.timeout_s !== undefined) add('timeout', `timeout ${step.timeout_s} s`);
  if (step.on_error && step.on_error !== 'fail') add('on-error', step.fallback ? `fallback ${step.fallback.uses}` : `on error: ${step.on_error}`);
  if (step.foreach) add('foreach', `foreach ${step.foreach}${step.max_parallel ? ` (${step.max_parallel} at once)` : ''}`);
  return list;
}

/** One step's node; `prefix` is the parent's step_id for a nested skill's step. */
export function stepNode(step: SkillStep, prefix: string, nested: ReadonlyMap<string, SkillDescription>): NodeParts {
  const id = prefix ? `${prefix}/${step.id}` : step.id;
  const status = h('p', { class: 'status', 'aria-live': 'off' }, 'pending');
  const node = h(
    'section',
    { class: 'node', 'data-step-id': id, 'data-state': 'pending', 'aria-label': `Step ${id}` },
    h('h3', {}, step.id),
    h('p', { class: 'uses' }, step.uses),
    step.description ? h('p', { class: 'desc' }, step.description) : null,
    badges(step),
    status,
  );
  let counter: HTMLElement | null = null;
  let items: HTMLOListElement | null = null;
  if (step.foreach) {
    counter = h('p', { class: 'counter' }, '0 items');
    items = h('ol', { class: 'items', 'aria-label': `Items of ${id}` });
    node.append(counter, items);
  }
  let children: HTMLElement | null = null;
  const inner = step.skill ? nested.get(step.skill) : undefined;
  if (inner) {
    children = h('div', { class: 'group-steps' });
    if (!step.foreach) for (const s of inner.steps) children.append(stepNode(s, id, nested).node);
    else children.append(h('p', { class: 'hint' }, `Each item runs ${inner.id}: ${inner.steps.map((s) => s.id).join(' → ')}`));
    node.classList.add('group');
    node.append(h('details', { class: 'group-body' }, h('summary', {}, `Nested skill ${inner.id}`), children));
  }
  const delta = h('pre', { class: 'delta', hidden: true, 'aria-label': `Output of ${id} so far` });
  const progress = h('progress', { class: 'progress', max: '1', value: '0', hidden: true, 'aria-label': `Progress of ${id}` });
  const answer = h('div', { class: 'answer' });
  node.append(progress, delta, answer);
  return { node, status, counter, items, children, delta, progress, answer };
}

/** The graph: nodes positioned by dagre inside a scrollable canvas, edges in SVG. */
export class Graph {
  readonly element: HTMLElement;
  readonly parts = new Map<string, NodeParts>();
  readonly #canvas: HTMLElement;
  readonly #svg: SVGSVGElement;
  readonly #skill: SkillDescription;
  #pending = false;

  constructor(skill: SkillDescription, nested: ReadonlyMap<string, SkillDescription>) {
    this.#skill = skill;
    this.#svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    this.#svg.setAttribute('aria-hidden', 'true');
    this.#canvas = h('div', { class: 'canvas' });
    this.#canvas.append(this.#svg);
    for (const step of skill.steps) {
      const parts = stepNode(step, '', nested);
      this.parts.set(step.id, parts);
      this.#canvas.append(parts.node);
    }
    // Focusable: the canvas overflows a wide or tall graph, and a keyboard user scrolls it from here.
    this.element = h('div', { class: 'graph', role: 'region', tabindex: '0', 'aria-label': `Graph of ${skill.id}` }, this.#canvas);
    this.#canvas.addEventListener('toggle', () => this.layout(), true);
  }

  /** Lay out again soon (a node grew): at most once a frame. */
  relayout(): void {
    if (this.#pending) return;
    this.#pending = true;
    requestAnimationFrame(() => {
      this.#pending = false;
      this.layout();
    });
  }

  /** Measure the nodes (they must be in the document) and place them. */
  layout(): void {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: 'TB', nodesep: 24, ranksep: 40, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const [id, p] of this.parts) g.setNode(id, { width: NODE_WIDTH, height: p.node.offsetHeight || 80 });
    for (const step of this.#skill.steps) for (const dep of step.after ?? []) g.setEdge(dep, step.id);
    dagre.layout(g);
    for (const [id, p] of this.parts) {
      const n = g.node(id);
      p.node.style.left = `${n.x - n.width / 2}px`;
      p.node.style.top = `${n.y - n.height / 2}px`;
      p.node.style.width = `${NODE_WIDTH}px`;
    }
    const size = g.graph();
    const width = Math.max(size.width ?? 0, NODE_WIDTH);
    const height = size.height ?? 0;
    this.#canvas.style.width = `${width}px`;
    this.#canvas.style.height = `${height}px`;
    this.#svg.setAttribute('width', String(width));
    this.#svg.setAttribute('height', String(height));
    this.#svg.replaceChildren(...g.edges().map((e) => this.#edge(g.edge(e).points ?? [])));
  }

  #edge(points: { x: number; y: number }[]): SVGPathElement {
    const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    path.setAttribute('d', points.map((p, i) => `${i ? 'L' : 'M'}${p.x},${p.y}`).join(' '));
    path.setAttribute('class', 'edge');
    return path;
  }
}
