import { describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { listenHttp } from '../../../controller/http-server.js';

// A client that sends garbage on a connection whose previous answer is still streaming (a log
// follow): the parser's error must not be answered with a 400 written into that stream's body; the
// connection is closed instead, as Node's own handler does.

describe('a malformed request behind a streaming answer', () => {
  it('closes the connection without writing an answer into the stream', async () => {
    const streaming = (): Response =>
      new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('data: first\n\n'));
          },
        }),
        { headers: { 'content-type': 'text/event-stream' } },
      );
    const listener = await listenHttp(streaming, '127.0.0.1', 0, undefined);
    try {
      const port = Number(new URL(listener.url).port);
      const socket = connect({ port, host: '127.0.0.1' });
      socket.on('error', () => {});
      let received = '';
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const firstChunk = new Promise<void>((resolve) =>
        socket.on('data', (d: Buffer) => {
          received += d.toString('latin1');
          if (received.includes('data: first')) resolve();
        }),
      );
      socket.write('GET /follow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await firstChunk;
      socket.write('\x01\x02 NOT HTTP\r\n\r\n');
      await closed;
      expect(received.startsWith('HTTP/1.1 200')).toBe(true);
      // One status line only: no "HTTP/1.1 400" written into the streaming body.
      expect(received.match(/HTTP\/1\.1 \d{3}/g)).toEqual(['HTTP/1.1 200']);
    } finally {
      await listener.close();
    }
  });
});
