/**
 * Server-Sent Events decoding, per WHATWG HTML, section 9.2.6 "Interpreting an
 * event stream": bytes → UTF-8 text (a leading BOM dropped) → lines ending in
 * CRLF, LF or CR → fields. Chunk boundaries may fall anywhere, even inside a
 * multibyte character or between the CR and LF of one line ending.
 */

/** One dispatched message. `id` is the last event ID buffer at dispatch time. */
export interface ServerSentEvent {
  /** The `event:` field, `message` when there was none. */
  event: string;
  /** The `data:` lines joined with LF. */
  data: string;
  /** The last event ID buffer at dispatch (`id:` persists across events), if any was set. */
  id: string | undefined;
  /**
   * Whether the event's own lines set `id` (else it is inherited from an earlier
   * event, or from the reconnection's `Last-Event-ID`). Only an event with its
   * own id can be recognised as a repeat after a resume.
   */
  hasId: boolean;
}

/**
 * A push decoder: `push(bytes)` returns the messages those bytes complete;
 * `lastEventId`, `retry` and `comments` hold what the stream said besides.
 * Sans-IO, so it works on any byte source (and is tested at every split).
 */
export class SSEDecoder {
  // The TextDecoder keeps a multibyte character split across chunks, and
  // drops the BOM the spec says to drop ("ignoreBOM" is false by default).
  readonly #text = new TextDecoder('utf-8');
  #buffer = '';
  // Where to look for the next line break: the buffer before it has none.
  #scanFrom = 0;
  // The last chunk ended in CR: an LF starting the next one is the same line ending.
  #pendingCR = false;
  #data: string[] = [];
  #event = '';
  // The event in progress has an `id:` line of its own.
  #hasId = false;
  /** The spec's "last event ID buffer": it survives between events. */
  lastEventId: string | undefined = undefined;
  /** The reconnection time the server asked for with `retry:`, in ms. */
  retry: number | undefined = undefined;
  /** How many comment lines (heartbeats) were seen. */
  comments = 0;

  /** Feed bytes; returns the messages they complete, in order. */
  push(chunk: Uint8Array): ServerSentEvent[] {
    let text = this.#text.decode(chunk, { stream: true });
    if (text === '') return [];
    if (this.#pendingCR) {
      this.#pendingCR = false;
      if (text.charCodeAt(0) === 10) text = text.slice(1);
    }
    this.#buffer += text;
    const out: ServerSentEvent[] = [];
    const buf = this.#buffer;
    let start = 0;
    for (let i = this.#scanFrom; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.#line(buf.slice(start, i), out);
      if (c === 13) {
        if (i + 1 === buf.length) this.#pendingCR = true;
        else if (buf.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.#buffer = buf.slice(start);
    this.#scanFrom = this.#buffer.length;
    return out;
  }

  /**
   * The end of the stream. Per the spec an event not yet ended by a blank line
   * is discarded, so nothing is returned; the state is cleared for reuse.
   */
  end(): void {
    this.#text.decode();
    this.#buffer = '';
    this.#scanFrom = 0;
    this.#pendingCR = false;
    this.#data = [];
    this.#event = '';
    this.#hasId = false;
  }

  #line(line: string, out: ServerSentEvent[]): void {
    if (line === '') {
      // Dispatch. With no data line at all, nothing is dispatched.
      if (this.#data.length > 0) {
        out.push({ event: this.#event || 'message', data: this.#data.join('\n'), id: this.lastEventId, hasId: this.#hasId });
      }
      this.#data = [];
      this.#event = '';
      this.#hasId = false;
      return;
    }
    const colon = line.indexOf(':');
    if (colon === 0) {
      this.comments++;
      return;
    }
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (name) {
      case 'event':
        this.#event = value;
        break;
      case 'data':
        this.#data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.lastEventId = value;
          this.#hasId = true;
        }
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.retry = Number(value);
        break;
      default:
      // Unknown fields are ignored.
    }
  }
}
