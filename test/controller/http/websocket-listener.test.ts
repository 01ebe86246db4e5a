import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { upgradeWebSocket } from '@hono/node-server';
import { Hono } from 'hono';
import { WebSocket } from 'ws';
import { listenHttp, type HttpListener } from '../../../controller/http-server.js';
import { selfSignedCertificate, type SelfSigned } from '../../helpers/self-signed.js';

// listenHttp serves WebSocket upgrades (the terminal) over HTTP and HTTPS, and its close() ends
// the open sockets (upgraded connections are no longer the HTTP server's to close).

const app = new Hono();
app.get('/ws', (c) => upgradeWebSocket(c, { onMessage: (e, ws) => ws.send(`echo:${String(e.data)}`) }));
app.get('/plain', (c) => c.text('plain'));

function connect(url: string, ca?: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ca ? { ca } : {});
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const next = (ws: WebSocket) => new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
const closed = (ws: WebSocket) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));

describe('WebSocket upgrades through listenHttp', () => {
  let dir = '';
  let cert: SelfSigned;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-ws-'));
    cert = await selfSignedCertificate(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const scheme of ['http', 'https'] as const) {
    it(`upgrades over ${scheme}, answers other routes as before, and closes open sockets on close()`, async () => {
      const tls = scheme === 'https' ? { cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) } : undefined;
      const listener: HttpListener = await listenHttp(app.fetch, '127.0.0.1', 0, tls);
      const ca = tls ? cert.certPem : undefined;
      const ws = await connect(`${listener.url.replace(/^http/, 'ws')}/ws`, ca);
      const reply = next(ws);
      ws.send('hi');
      expect(await reply).toBe('echo:hi');
      if (!tls) expect(await (await fetch(`${listener.url}/plain`)).text()).toBe('plain');
      const code = closed(ws);
      await listener.close();
      expect([1001, 1006]).toContain(await code);
    });
  }
});
