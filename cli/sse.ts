/** One server-sent event: its type (`message` unless the server named one) and its data. */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
}

/**
 * The events of a `text/event-stream` body as they arrive (the WHATWG rules the CLI needs: `data:`
 * lines joined by newlines, `event:` names it, a blank line dispatches, `:` comments such as the
 * keep-alive are skipped, CRLF or LF). Ends when the body ends; an event cut off by the end of the
 * body is dropped, as a browser would.
 */
export async function* sseEvents(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  const parser = new SseParser();
  for await (const chunk of body) yield* parser.push(decoder.decode(chunk, { stream: true }));
  yield* parser.push(decoder.decode());
}

/**
 * The most characters of one event (its lines together) or of a line not ended yet. The controller's
 * are a log line (at most 16 KiB, agent/runtime/docker-logs.ts) or a reason; a stream that goes on
 * past this without ending an event is not the controller's, and is not kept in memory whole.
 */
export const MAX_EVENT_CHARS = 1024 * 1024;

/** The line-by-line state of an event stream (pure: fed text, gives the complete events). */
export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private dataChars = 0;
  private hasData = false;

  /** The complete events in the text so far; throws when an event or line outgrows MAX_EVENT_CHARS. */
  push(text: string): SseEvent[] {
    this.buffer += text;
    const events: SseEvent[] = [];
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      // A lone \r at the very end may be the first half of \r\n: wait for more text.
      if (this.buffer[newline] === '\r' && newline === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + (this.buffer.startsWith('\r\n', newline) ? 2 : 1));
      const event = this.line(line);
      if (event) events.push(event);
    }
    if (this.buffer.length + this.dataChars > MAX_EVENT_CHARS) throw new Error(`an event longer than ${MAX_EVENT_CHARS} characters`);
    return events;
  }

  private line(line: string): SseEvent | undefined {
    if (line === '') {
      const event = this.hasData ? { event: this.event || 'message', data: this.data.join('\n') } : undefined;
      this.event = '';
      this.data = [];
      this.dataChars = 0;
      this.hasData = false;
      return event;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') this.event = value;
    else if (field === 'data') {
      this.data.push(value);
      this.dataChars += value.length + 1;
      this.hasData = true;
    }
    return undefined;
  }
}
