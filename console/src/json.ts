/** A collapsible JSON tree: objects and arrays are <details>, open two levels deep. */
import { h } from './dom.js';

export function jsonTree(value: unknown, label = 'outputs', depth = 0): HTMLElement {
  if (value !== null && typeof value === 'object') {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
    const kind = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
    const details = h('details', { class: 'json', open: depth < 2 }, h('summary', {}, h('span', { class: 'key' }, label), ' ', kind));
    const list = h('ul', {});
    for (const [k, v] of entries) list.append(h('li', {}, jsonTree(v, k, depth + 1)));
    details.append(list);
    return details;
  }
  return h('span', { class: 'json-leaf' }, h('span', { class: 'key' }, label), ': ', h('code', { class: `v-${value === null ? 'null' : typeof value}` }, JSON.stringify(value)));
}
