import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import type { RunningController } from '../../../controller/server.js';
import { MAX_BODY_BYTES } from '../../../controller/api/app.js';
import { startTestController, type TestController } from '../../helpers/controller.js';

// Oversized requests on a real controller, over raw sockets (node:net), as a keep-alive client
// sends them: a body over the 1 MiB limit is answered 413 with the contract's envelope and
// `Connection: close`, the connection is then closed (no reuse promised that would fail with
// "socket hang up"), and a new connection works; a header block over Node's limit is answered
// 431 with an envelope too, not Node's bare 431. No database is involved (PGlite only).

const ADMIN = 'oversized-admin-token-0123456789abcd';
const JOIN = 'oversized-join-token-0123456789abcde';

interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Reads one HTTP/1.1 response with a Content-Length body from `socket` (data already buffered in `state`). */
function readResponse(socket: Socket, state: { buf: Buffer }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const tryParse = () => {
      const end = state.buf.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const head = state.buf.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(head[0]!.split(' ')[1]);
      const headers: Record<string, string> = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      const length = Number(headers['content-length'] ?? 0);
      if (state.buf.length < end + 4 + length) return false;
      const body = state.buf.subarray(end + 4, end + 4 + length).toString('utf8');
      state.buf = state.buf.subarray(end + 4 + length);
      resolve({ status, headers, body });
      return true;
    };
    if (tryParse()) return;
    const onData = (d: Buffer) => {
      state.buf = Buffer.concat([state.buf, d]);
      if (tryParse()) cleanup();
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`connection closed before a whole response (${state.buf.length} bytes read)`));
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
  });
}

/** Resolves once the server closed the connection (end or close). */
function closedByServer(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.readableEnded || socket.destroyed) return resolve();
    socket.once('end', () => resolve());
    socket.once('close', () => resolve());
  });
}

describe('oversized requests on a real controller', () => {
  let platform: TestController | undefined;
  let controller: RunningController;
  let port = 0;
  /** A raw connection; `allowHalfOpen`: it keeps writing after the server closed its side. */
  const open = (allowHalfOpen = false) =>
    new Promise<Socket>((resolve, reject) => {
      const s = connect({ port, host: '127.0.0.1', allowHalfOpen }, () => resolve(s));
      s.once('error', reject);
    });
  const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN}\r\nConnection: keep-alive\r\n\r\n`;

  beforeAll(async () => {
    platform = await startTestController({ name: 'pglite', skipReason: '' }, { admin: ADMIN, join: JOIN });
    controller = platform.controller;
    port = Number(new URL(controller.httpUrl).port);
  });

  afterAll(async () => {
    await platform?.close();
  });

  it('answers a body over the limit 413 with an envelope and Connection: close, then closes; a new connection works', async () => {
    const socket = await open(true);
    const state = { buf: Buffer.alloc(0) };
    const errors: Error[] = [];
    socket.on('error', (err) => errors.push(err));
    // A keep-alive request that works first: the connection is reusable before the oversized one.
    socket.write(get('/api/v1/me'));
    expect((await readResponse(socket, state)).status).toBe(200);

    // The whole body is sent, slowly (16 pieces 60 ms apart), as a client that does not read while
    // it writes does: the server answers, closes its side and drops the rest while it arrives,
    // with no reset that would make the client's writes fail or destroy the answer.
    const size = MAX_BODY_BYTES + 1024;
    socket.write(`POST /api/v1/environments HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\nConnection: keep-alive\r\n\r\n`);
    const sent = (async () => {
      for (let left = size; left > 0; left -= 65_600) {
        await new Promise<void>((resolve, reject) => socket.write(Buffer.alloc(Math.min(left, 65_600), 0x20), (err) => (err ? reject(err) : resolve())));
        await new Promise((r) => setTimeout(r, 60));
      }
    })().catch((err: Error) => void errors.push(err));
    const res = await readResponse(socket, state);
    expect(res.status).toBe(413);
    expect(res.headers['connection']).toBe('close');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(res.body)).toEqual({ code: 41301, message: `request body is larger than ${MAX_BODY_BYTES} bytes`, data: null });
    await closedByServer(socket);
    await sent;
    socket.end();
    await new Promise((r) => socket.once('close', r));
    expect(errors.map(String)).toEqual([]);

    const again = await open();
    const next = { buf: Buffer.alloc(0) };
    again.write(get('/api/v1/me'));
    expect((await readResponse(again, next)).status).toBe(200);
    again.destroy();
  });

  it('answers Content-Length over the limit the same way without waiting for the body', async () => {
    const socket = await open();
    socket.on('error', () => {});
    const state = { buf: Buffer.alloc(0) };
    socket.write(`POST /api/v1/environments HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nContent-Length: ${50 * MAX_BODY_BYTES}\r\n\r\n{"name":`);
    const res = await readResponse(socket, state);
    expect(res.status).toBe(413);
    expect(res.headers['connection']).toBe('close');
    expect(JSON.parse(res.body).code).toBe(41301);
    await closedByServer(socket);
    socket.destroy();
  });

  it('answers a header block over the limit 431 with an envelope and Connection: close', async () => {
    const socket = await open();
    socket.on('error', () => {});
    const state = { buf: Buffer.alloc(0) };
    socket.write(`GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN}\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    const res = await readResponse(socket, state);
    expect(res.status).toBe(431);
    expect(res.headers['connection']).toBe('close');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = JSON.parse(res.body);
    expect(body).toMatchObject({ code: 43101, data: null });
    expect(body.message).toMatch(/header/);
    await closedByServer(socket);
    socket.destroy();

    const again = await open();
    const next = { buf: Buffer.alloc(0) };
    again.write(get('/api/v1/me'));
    expect((await readResponse(again, next)).status).toBe(200);
    again.destroy();
  });

  it('answers a malformed request line 400 with an envelope', async () => {
    const socket = await open();
    socket.on('error', () => {});
    const state = { buf: Buffer.alloc(0) };
    socket.write('THIS IS NOT HTTP\r\n\r\n');
    const res = await readResponse(socket, state);
    expect(res.status).toBe(400);
    expect(res.headers['connection']).toBe('close');
    expect(JSON.parse(res.body)).toMatchObject({ code: 40001, data: null });
    socket.destroy();
  });
});
