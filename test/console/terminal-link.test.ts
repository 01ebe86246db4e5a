import { afterEach, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
// @ts-expect-error: a plain ES module of the console's assets (no types); the browser loads the same file.
import { ACK_BATCH_BYTES, EARLY_INPUT_BYTES, terminalLink } from '../../controller/console/assets/terminal-link.js';

// The console terminal's client side of the protocol (terminal-link.js) over a real WebSocket whose
// handshake the server holds back, so input and resizes happen while it is still CONNECTING.

type Frame = { binary: boolean; text: string; length: number };

describe('terminalLink (the console terminal over its WebSocket)', () => {
  let server: WebSocketServer | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  /** A server that accepts the upgrade only once `release()` is called; `frames` is what it received. */
  async function heldServer() {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const frames: Frame[] = [];
    server = new WebSocketServer({ port: 0, host: '127.0.0.1', verifyClient: (_info, done) => void released.then(() => done(true)) });
    server.on('connection', (ws) => ws.on('message', (data, binary) => {
      const buf = data as Buffer;
      frames.push({ binary, text: buf.toString('utf8'), length: buf.length });
    }));
    await new Promise((r) => server!.once('listening', r));
    const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    return { client, frames, release };
  }
  const until = async (check: () => boolean) => {
    for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  };

  it('keeps keystrokes and the last resize made while connecting and sends them on open, size first', async () => {
    const { client, frames, release } = await heldServer();
    const link = terminalLink(client);
    link.input('echo ');
    link.resize(100, 30);
    link.input('typed-early\n');
    link.resize(120, 40);
    expect(client.readyState).toBe(WebSocket.CONNECTING);
    release();
    await until(() => frames.length >= 3);
    expect(frames.map((f) => [f.binary, f.text])).toEqual([
      [false, JSON.stringify({ type: 'resize', cols: 120, rows: 40 })],
      [true, 'echo '],
      [true, 'typed-early\n'],
    ]);
    link.input('after\n');
    await until(() => frames.length >= 4);
    expect(frames[3]).toMatchObject({ binary: true, text: 'after\n' });
    client.close();
  });

  it('keeps at most EARLY_INPUT_BYTES typed before open', async () => {
    const { client, frames, release } = await heldServer();
    const link = terminalLink(client);
    const chunk = 'x'.repeat(1024);
    for (let i = 0; i < EARLY_INPUT_BYTES / 1024 + 10; i++) link.input(chunk);
    release();
    await until(() => frames.length >= EARLY_INPUT_BYTES / 1024);
    link.input('last');
    await until(() => frames.at(-1)?.text === 'last');
    expect(frames.slice(0, -1).reduce((n, f) => n + f.length, 0)).toBe(EARLY_INPUT_BYTES);
    client.close();
  });

  it('acknowledges output once the terminal processed it, in batches, and the rest when it is idle', async () => {
    const { client, frames, release } = await heldServer();
    release();
    await new Promise((r) => client.once('open', r));
    const link = terminalLink(client);
    const pending: (() => void)[] = [];
    const write = (_data: Uint8Array, done: () => void) => pending.push(done);
    const piece = new Uint8Array(ACK_BATCH_BYTES / 4);
    for (let i = 0; i < 6; i++) link.output(piece, write);
    expect(frames).toEqual([]);
    for (const done of pending.splice(0, 4)) done(); // 4 pieces = one batch, 2 still being written
    await until(() => frames.length >= 1);
    for (const done of pending.splice(0)) done();
    await until(() => frames.length >= 2);
    expect(frames.map((f) => JSON.parse(f.text))).toEqual([
      { type: 'ack', bytes: ACK_BATCH_BYTES },
      { type: 'ack', bytes: ACK_BATCH_BYTES / 2 },
    ]);
    client.close();
  });
});
