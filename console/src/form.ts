/**
 * A form generated from a JSON Schema of an object (a skill's `inputs`, a waiting
 * step's answer `schema`): one labelled field per property, checked before sending.
 * `pattern` and `format` are left to the server (its regex dialect decides); its
 * 422 `errors[].field` lands on the field through `showErrors`.
 */
import { h } from './dom.js';

/** The part of JSON Schema the form reads. */
export interface FieldSchema {
  type?: string | string[];
  enum?: unknown[];
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  format?: string;
  writeOnly?: boolean;
  properties?: Record<string, FieldSchema>;
  required?: string[];
}

type Control = HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;

interface Field {
  name: string;
  schema: FieldSchema;
  required: boolean;
  control: Control;
  error: HTMLElement;
}

function typeOf(schema: FieldSchema): string {
  const t = Array.isArray(schema.type) ? schema.type.find((x) => x !== 'null') : schema.type;
  return t ?? (schema.properties ? 'object' : 'string');
}

export class SchemaForm {
  readonly element: HTMLFormElement;
  readonly #fields: Field[] = [];
  readonly #formError: HTMLElement;

  constructor(schema: FieldSchema, idPrefix: string, submitLabel: string, onSubmit: (value: Record<string, unknown>) => void) {
    this.element = h('form', { class: 'schema-form', novalidate: true });
    const required = new Set(schema.required ?? []);
    for (const [name, prop] of Object.entries(schema.properties ?? {})) {
      const field = this.#field(`${idPrefix}-${name}`, name, prop, required.has(name));
      this.#fields.push(field);
    }
    this.#formError = h('p', { class: 'form-error', role: 'alert' });
    this.element.append(this.#formError, h('button', { type: 'submit', class: 'primary' }, submitLabel));
    this.element.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const value = this.read();
      if (value !== undefined) onSubmit(value);
    });
  }

  #field(id: string, name: string, schema: FieldSchema, required: boolean): Field {
    const control = this.#control(id, schema);
    if (required) control.setAttribute('aria-required', 'true');
    const error = h('p', { class: 'field-error', id: `${id}-error` });
    const hint = schema.description ? h('p', { class: 'hint', id: `${id}-hint` }, schema.description) : null;
    control.setAttribute('aria-describedby', [hint ? `${id}-hint` : '', `${id}-error`].join(' ').trim());
    const label = h('label', { for: id }, name);
    const mark = required ? h('span', { class: 'required', 'aria-hidden': 'true' }, ' *') : null;
    const row = h('div', { class: `field field-${typeOf(schema)}`, 'data-field': name }, label, mark, control, hint, error);
    this.element.append(row);
    return { name, schema, required, control, error };
  }

  #control(id: string, schema: FieldSchema): Control {
    const type = typeOf(schema);
    const def = schema.default;
    if (schema.enum) {
      const select = h('select', { id, name: id });
      if (def === undefined) select.append(h('option', { value: '' }, '—'));
      schema.enum.forEach((v, i) => select.append(h('option', { value: String(i), selected: v === def }, String(v))));
      return select;
    }
    if (type === 'boolean') return h('input', { id, type: 'checkbox', checked: def === true });
    if (type === 'integer' || type === 'number') {
      const input = h('input', { id, type: 'number', inputmode: type === 'integer' ? 'numeric' : 'decimal', step: type === 'integer' ? '1' : 'any' });
      if (schema.minimum !== undefined) input.min = String(schema.minimum);
      if (schema.maximum !== undefined) input.max = String(schema.maximum);
      if (typeof def === 'number') input.value = String(def);
      return input;
    }
    if (type === 'object' || type === 'array') {
      const area = h('textarea', { id, rows: '3', spellcheck: 'false', placeholder: type === 'array' ? '[…] as JSON' : '{…} as JSON' });
      if (def !== undefined) area.value = JSON.stringify(def);
      return area;
    }
    const secret = schema.writeOnly === true || schema.format === 'password';
    const long = !secret && (schema.maxLength === undefined || schema.maxLength > 300);
    const control = long ? h('textarea', { id, rows: '4' }) : h('input', { id, type: secret ? 'password' : 'text' });
    if (typeof def === 'string') control.value = def;
    return control;
  }

  /** The value, or undefined after flagging every invalid field (focus on the first). */
  read(): Record<string, unknown> | undefined {
    const out: Record<string, unknown> = {};
    let first: Field | undefined;
    for (const f of this.#fields) {
      const [value, problem] = this.#value(f);
      this.#flag(f, problem);
      if (problem) first ??= f;
      else if (value !== undefined) out[f.name] = value;
    }
    this.#formError.textContent = first ? 'Some values need fixing before the run can start.' : '';
    if (first) {
      first.control.focus();
      return undefined;
    }
    return out;
  }

  #value(f: Field): [unknown, string] {
    const s = f.schema;
    const type = typeOf(s);
    const c = f.control;
    if (s.enum) {
      if (c.value === '') return [undefined, f.required ? 'Choose a value.' : ''];
      return [s.enum[Number(c.value)], ''];
    }
    if (type === 'boolean') return [(c as HTMLInputElement).checked, ''];
    const raw = c.value;
    if (raw.trim() === '' && type !== 'string') return [undefined, f.required ? 'A value is required.' : ''];
    if (raw === '') return [undefined, f.required ? 'A value is required.' : ''];
    if (type === 'integer' || type === 'number') return numberValue(raw, type, s);
    if (type === 'object' || type === 'array') return jsonValue(raw, type);
    if (s.minLength !== undefined && raw.length < s.minLength) return [raw, `At least ${s.minLength} characters.`];
    if (s.maxLength !== undefined && raw.length > s.maxLength) return [raw, `At most ${s.maxLength} characters.`];
    return [raw, ''];
  }

  #flag(f: Field, problem: string): void {
    f.error.textContent = problem;
    if (problem) f.control.setAttribute('aria-invalid', 'true');
    else f.control.removeAttribute('aria-invalid');
  }

  /** The server's 422: each `errors[].field` (`inputs.x`, `value.x`, `x`) on its field. */
  showErrors(errors: readonly { field: string; message: string }[], prefix: string): void {
    let first: Field | undefined;
    const unplaced: string[] = [];
    for (const e of errors) {
      const name = e.field.startsWith(`${prefix}.`) ? e.field.slice(prefix.length + 1).split(/[.[]/)[0] : e.field;
      const f = this.#fields.find((x) => x.name === name);
      if (f) {
        this.#flag(f, e.message);
        first ??= f;
      } else unplaced.push(`${e.field}: ${e.message}`);
    }
    this.#formError.textContent = unplaced.length ? unplaced.join('; ') : 'The server refused some values (422).';
    first?.control.focus();
  }

  showError(message: string): void {
    this.#formError.textContent = message;
  }
}

function numberValue(raw: string, type: string, s: FieldSchema): [unknown, string] {
  const n = Number(raw);
  if (!Number.isFinite(n)) return [raw, 'Not a number.'];
  if (type === 'integer' && !Number.isInteger(n)) return [n, 'A whole number is needed.'];
  if (s.minimum !== undefined && n < s.minimum) return [n, `At least ${s.minimum}.`];
  if (s.maximum !== undefined && n > s.maximum) return [n, `At most ${s.maximum}.`];
  if (s.exclusiveMinimum !== undefined && n <= s.exclusiveMinimum) return [n, `More than ${s.exclusiveMinimum}.`];
  if (s.exclusiveMaximum !== undefined && n >= s.exclusiveMaximum) return [n, `Less than ${s.exclusiveMaximum}.`];
  return [n, ''];
}

function jsonValue(raw: string, type: string): [unknown, string] {
  try {
    const v: unknown = JSON.parse(raw);
    const ok = type === 'array' ? Array.isArray(v) : v !== null && typeof v === 'object' && !Array.isArray(v);
    return [v, ok ? '' : `JSON ${type === 'array' ? 'array' : 'object'} expected.`];
  } catch {
    return [raw, 'Not valid JSON.'];
  }
}
