import { serve } from '@hono/node-server';
import { Hono } from 'hono';

// The HTTP baseline of the fleet bench, run as a child process: a bare Hono GET answering a small
// JSON envelope. It prints its port on stdout and serves until killed.

const app = new Hono();
app.get('/ping', (c) => c.json({ code: 0, message: 'ok', data: { pong: true } }));
serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) => {
  process.stdout.write(`listening ${info.port}\n`);
});
