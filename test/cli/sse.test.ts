import { describe, expect, it } from 'vitest';
import { MAX_EVENT_CHARS, SseParser, sseEvents } from '../../cli/sse.js';

// The event-stream reader behind `remotegpu env logs -f`, fed the controller's format
// (controller/api/environment-logs.routes.ts): data lines, keep-alive comments, `event: end`.

describe('SseParser', () => {
  it('gives data events, skips keep-alive comments and names the end event', () => {
    const p = new SseParser();
    const text = 'data: [2026-11-25 20:35:46] one\n\n: keep-alive\n\ndata: [2026-11-25 20:36:08] Delete requested\n\nevent: end\ndata: environment deleted\n\n';
    expect(p.push(text)).toEqual([
      { event: 'message', data: '[2026-11-25 20:35:46] one' },
      { event: 'message', data: '[2026-11-25 20:36:08] Delete requested' },
      { event: 'end', data: 'environment deleted' },
    ]);
  });

  it('joins an event split across chunks anywhere, CRLF included', () => {
    const text = 'data: first\r\n\r\ndata: line a\r\ndata: line b\r\n\r\nevent: end\r\ndata: token revoked\r\n\r\n';
    for (let cut = 1; cut < text.length; cut++) {
      const p = new SseParser();
      expect([...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))]).toEqual([
        { event: 'message', data: 'first' },
        { event: 'message', data: 'line a\nline b' },
        { event: 'end', data: 'token revoked' },
      ]);
    }
  });

  it('keeps spaces after the first, and an empty data line', () => {
    expect(new SseParser().push('data:  indented\n\ndata:\n\n')).toEqual([
      { event: 'message', data: ' indented' },
      { event: 'message', data: '' },
    ]);
  });

  it('drops an event the stream cut off before its blank line', async () => {
    async function* body() {
      yield new TextEncoder().encode('data: whole\n\ndata: cut');
    }
    const events = [];
    for await (const e of sseEvents(body())) events.push(e);
    expect(events).toEqual([{ event: 'message', data: 'whole' }]);
  });

  it('refuses a line or an event that never ends instead of keeping it all in memory; a long log line passes', () => {
    const chunk = 'x'.repeat(64 * 1024);
    const endless = (feed: (p: SseParser) => void) => () => {
      const p = new SseParser();
      for (let fed = 0; fed <= 2 * MAX_EVENT_CHARS; fed += chunk.length) feed(p);
    };
    expect(endless((p) => p.push(chunk))).toThrow(/an event longer than/);
    expect(endless((p) => p.push(`data: ${chunk}\n`))).toThrow(/an event longer than/);
    const line = 'y'.repeat(16 * 1024);
    const p = new SseParser();
    for (let i = 0; i < 200; i++) expect(p.push(`data: ${line}\n\n`)).toEqual([{ event: 'message', data: line }]);
  });

  it('decodes UTF-8 split between chunks', async () => {
    const bytes = new TextEncoder().encode('data: 环境创建成功\n\n');
    async function* body() {
      yield bytes.slice(0, 9);
      yield bytes.slice(9);
    }
    const events = [];
    for await (const e of sseEvents(body())) events.push(e);
    expect(events).toEqual([{ event: 'message', data: '环境创建成功' }]);
  });
});
