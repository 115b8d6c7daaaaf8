/**
 * The run's timeline, virtualised: one entry per event is kept in memory, but only the
 * rows in (and just around) the scrolled-to window are in the DOM, so a 10,000-item run
 * lays out a few dozen rows, not 20,000. Rows have one fixed height (their text is cut
 * with an ellipsis; the whole of it is the row's `title`), which is what makes a row's
 * place a multiplication instead of a measurement.
 *
 * Hooks: each rendered row carries `data-event-id`; the list carries `data-rows`, the
 * number of distinct events it holds (rendered or not), and each row `aria-posinset` /
 * `aria-setsize` so assistive technology knows where in the whole list it is.
 */
import { h } from './dom.js';

/** What a row shows; kept for every event, turned into an element only when visible. */
export interface RowData {
  id: string;
  type: string;
  at: string;
  where: string;
  message: string;
}

const ROW_PX = 26; // the one row height (style.css sets the same on `.timeline li`)
const OVERSCAN = 10; // rows drawn past each edge, so a scroll shows no blank before the next frame

export class Timeline {
  /** The scrolling viewport (focusable: a keyboard user can scroll it). */
  readonly element: HTMLElement;
  readonly #list: HTMLOListElement;
  readonly #rows: RowData[] = [];
  #frame = false;
  /** The rows now in the DOM: [first, end). */
  #first = 0;
  #end = 0;

  constructor() {
    this.#list = h('ol', { class: 'timeline', 'aria-label': 'Events', 'data-rows': '0' });
    this.element = h('div', { class: 'timeline-view', tabindex: '0', role: 'region', 'aria-label': 'Timeline of events' }, this.#list);
    this.element.addEventListener('scroll', () => this.#schedule(), { passive: true });
  }

  /** Add a row (the caller dedups by event id); drawn with the frame's other rows. */
  push(row: RowData): void {
    this.#rows.push(row);
    this.#schedule();
  }

  get size(): number {
    return this.#rows.length;
  }

  /** At most one render a frame, however many events or scroll events arrive. */
  #schedule(): void {
    if (this.#frame) return;
    this.#frame = true;
    requestAnimationFrame(() => {
      this.#frame = false;
      this.#render();
    });
  }

  #render(): void {
    const total = this.#rows.length;
    this.#list.style.height = `${total * ROW_PX}px`;
    this.#list.dataset['rows'] = String(total);
    const top = this.element.scrollTop;
    const height = this.element.clientHeight || ROW_PX * 20;
    const first = Math.max(0, Math.floor(top / ROW_PX) - OVERSCAN);
    const end = Math.min(total, Math.ceil((top + height) / ROW_PX) + OVERSCAN);
    const rendered = this.#list.childElementCount;
    // Unchanged window, and no new row inside it: nothing to redraw (the size still changes).
    if (first === this.#first && end === this.#end && rendered === end - first) {
      for (const li of this.#list.children) li.setAttribute('aria-setsize', String(total));
      return;
    }
    this.#first = first;
    this.#end = end;
    const rows: HTMLElement[] = [];
    for (let i = first; i < end; i++) {
      const r = this.#rows[i];
      if (r) rows.push(this.#row(r, i, total));
    }
    this.#list.replaceChildren(...rows);
  }

  #row(r: RowData, index: number, total: number): HTMLElement {
    const li = h(
      'li',
      {
        'data-event-id': r.id, 'data-type': r.type, class: `t-${r.type}`,
        'aria-posinset': String(index + 1), 'aria-setsize': String(total),
        title: `${r.at} ${r.type} ${r.where} ${r.message}`.replace(/\s+/g, ' '),
      },
      h('span', { class: 'at' }, r.at), ' ',
      h('code', { class: 'type' }, r.type), ' ', r.where ? h('span', { class: 'where' }, r.where) : null, ' ',
      h('span', { class: 'msg' }, r.message),
    );
    li.style.top = `${index * ROW_PX}px`;
    return li;
  }
}
