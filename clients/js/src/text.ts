/**
 * A step's text as it is made, from its `step_delta` events (sans-IO; the same
 * rules as the Python client's `_text.py`).
 *
 * `StepTexts` watches every event a stream delivers and keeps, per step (and
 * `foreach` item), the text of the attempt that is running. What it turns into
 * `TextChunk`s is what `stream.text()` yields:
 * - each `delta.text` of a `step_delta`, as it arrives (chunk boundaries mean
 *   nothing: the server coalesces deltas, so join them, never count them);
 * - a restart marker (`restart: true`, `text: ''`) when text already yielded for a
 *   step stops counting: the attempt failed and a retry or fallback follows
 *   (`step_retrying`, `step_fallback`), a delta names a new attempt, or the step
 *   starts over (a second `step_start`, after a server restart). A UI clears what
 *   it showed for that step; the chunks that follow are the new attempt's.
 *
 * When the step ends, the text of the attempt that produced its output is its
 * final text: `''` when it completed without text, `null` when it failed or was
 * skipped (a failed attempt's text is never part of the output).
 */
import type { StreamEvent } from './types.js';

/** A piece of a step's text, or (`restart: true`) the signal that the text shown so far for the step is void. */
export interface TextChunk {
  /** The step's `step_id`. */
  stepId: string;
  /** The `foreach` item, for a step that runs once per item. */
  index: number | undefined;
  /** The attempt that made the text (for a restart marker: the attempt now void). */
  attempt: number;
  /** Text to append to what is shown for the step; `''` for a restart marker. */
  text: string;
  /** True: clear what is shown for the step; the chunks that follow start over. */
  restart: boolean;
}

/** Which step (item) `stream.text()` and `stream.finalText()` follow. */
export interface TextOptions {
  /** One `foreach` item; without it `text()` yields every item's chunks. */
  index?: number | undefined;
}

interface Attempt {
  number: number;
  parts: string[];
}

interface Waiter {
  resolve: (text: string | null) => void;
  reject: (err: unknown) => void;
}

const VOIDING = new Set(['step_start', 'step_retrying', 'step_fallback']);
const PRODUCED = new Set(['step_completed', 'step_degraded']);
const NOTHING = new Set(['step_failed', 'step_skipped']);

/** @internal Per-step text of the running attempt, and the final text of each ended step. */
export class StepTexts {
  readonly #live = new Map<string, Attempt>();
  readonly #final = new Map<string, string | null>();
  readonly #waiters = new Map<string, Waiter[]>();
  #closed: { err: unknown } | undefined;

  /** The chunks `event` means (most events: none). */
  observe(event: StreamEvent): TextChunk[] {
    const stepId = 'step_id' in event ? event.step_id : undefined;
    if (typeof stepId !== 'string') return [];
    const data = (event as { data?: { index?: number; attempt?: number; delta?: { text?: string } } }).data;
    const index = data?.index;
    const key = keyOf(stepId, index);
    if (event.type === 'step_delta') return this.#delta(key, stepId, index, data?.attempt ?? 1, data?.delta?.text);
    if (VOIDING.has(event.type)) {
      if (event.type === 'step_start') this.#final.delete(key); // the step runs again (a resumed run)
      return this.#void(key, stepId, index);
    }
    if (PRODUCED.has(event.type) || NOTHING.has(event.type)) {
      const parts = this.#live.get(key)?.parts ?? [];
      this.#live.delete(key);
      this.#end(key, PRODUCED.has(event.type) ? parts.join('') : null);
    }
    return [];
  }

  /** The step's final text once it has ended: at once when it has, else when it does. */
  final(stepId: string, index: number | undefined): Promise<string | null> {
    const key = keyOf(stepId, index);
    if (this.#final.has(key)) return Promise.resolve(this.#final.get(key) ?? null);
    if (this.#closed !== undefined) {
      return this.#closed.err === undefined ? Promise.resolve(null) : Promise.reject(this.#closed.err);
    }
    return new Promise((resolve, reject) => {
      const waiting = this.#waiters.get(key) ?? [];
      waiting.push({ resolve, reject });
      this.#waiters.set(key, waiting);
    });
  }

  /** The stream ended: steps still awaited never end (`null`), or the stream failed (`err`). */
  close(err: unknown): void {
    if (this.#closed !== undefined) return; // the first reason is the real one
    this.#closed = { err };
    for (const waiting of this.#waiters.values()) {
      for (const w of waiting) (err === undefined ? w.resolve(null) : w.reject(err));
    }
    this.#waiters.clear();
  }

  #end(key: string, text: string | null): void {
    this.#final.set(key, text);
    for (const w of this.#waiters.get(key) ?? []) w.resolve(text);
    this.#waiters.delete(key);
  }

  #delta(key: string, stepId: string, index: number | undefined, number: number, text: string | undefined): TextChunk[] {
    let attempt = this.#live.get(key);
    const out: TextChunk[] = [];
    if (attempt !== undefined && attempt.number !== number) {
      out.push(...this.#void(key, stepId, index)); // a new attempt without a voiding event before it
      attempt = undefined;
    }
    if (attempt === undefined) {
      attempt = { number, parts: [] };
      this.#live.set(key, attempt);
    }
    if (text) {
      attempt.parts.push(text);
      out.push({ stepId, index, attempt: number, text, restart: false });
    }
    return out;
  }

  /** Drop the running attempt's text; a restart marker if any of it was yielded. */
  #void(key: string, stepId: string, index: number | undefined): TextChunk[] {
    const attempt = this.#live.get(key);
    this.#live.delete(key);
    if (attempt === undefined || attempt.parts.length === 0) return [];
    return [{ stepId, index, attempt: attempt.number, text: '', restart: true }];
  }
}

function keyOf(stepId: string, index: number | undefined): string {
  return index === undefined ? stepId : `${stepId}\u0000${index}`;
}
