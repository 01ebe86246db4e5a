import { serve } from '@hono/node-server';
import { Hono } from 'hono';

// A bare Hono GET (no auth, no database), the ceiling list-reads.ts compares the API with.
// Run: npx tsx bench/bare-hono.ts PORT

const app = new Hono();
app.get('/ping', (c) => c.json({ code: 0, message: 'ok', data: { pong: true } }));
serve({ fetch: app.fetch, port: Number(process.argv[2] ?? 31462), hostname: '127.0.0.1' });
