import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../common/logger.js';
import { platformEnvAt, startLocalPlatform } from '../scripts/local-platform.js';
import { releaseRunDir, removeNamespace, testRunDir } from '../test/helpers/docker.js';
import { restCaller, waitUntil } from '../test/helpers/rest.js';
import { TerminalClient } from '../test/helpers/terminal-client.js';

// Keystroke round trip through the terminal WebSocket: one byte sent, its echo awaited, on loopback
// through the real controller, agent (gRPC Exec, pty, `docker exec`) and Docker. The client is the
// `ws` package in this process (a browser adds its own event loop and xterm.js rendering).
// Run: npx tsx bench/terminal-ws.ts [keystrokes]   Writes bench/results/terminal-ws.{json,md}.

const KEYS = Number(process.argv[2] ?? 200);
const ADMIN = 'bench-term-admin-token-0123456789ab';
const NAMESPACE = `bench-term-${process.pid}`;
const dir = mkdtempSync(path.join(tmpdir(), 'rgpu-bench-term-'));
const runDir = testRunDir();
const platform = await startLocalPlatform(
  platformEnvAt({ dir, runDir, adminToken: ADMIN, namespace: NAMESPACE }, {
    REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
    REMOTEGPU_REPORT_INTERVAL_MS: '500',
    REMOTEGPU_SSH_PORT_RANGE: '19100-19149',
    REMOTEGPU_JUPYTER_PORT_RANGE: '19150-19199',
  }),
  createLogger({ name: 'bench-term', level: 'warn' }),
);
const api = restCaller(() => platform.controller.httpUrl);
let envId = '';
try {
  await waitUntil('host', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
  const res = await api('POST', '/api/v1/environments', ADMIN, { name: 'bench', image: 'devbox:1', cpu: 1, memory: 2 ** 29, gpu: 0, storage: 2 ** 30 });
  envId = res.body.data.env_id;
  await waitUntil('running', async () => (await api('GET', `/api/v1/environments/${envId}`, ADMIN)).body.data.status === 'running', 120_000);
  const { ticket } = (await api('POST', `/api/v1/environments/${envId}/terminal/ticket`, ADMIN)).body.data;
  const t0 = performance.now();
  const term = await TerminalClient.open(`${platform.controller.httpUrl.replace(/^http/, 'ws')}/api/v1/environments/${envId}/terminal?cols=80&rows=24&ticket=${ticket}`);
  // BusyBox's shell asks where the cursor is (ESC [6n) before each prompt, as xterm.js would answer.
  term.ws.on('message', (data: Buffer) => {
    if (data.includes('\x1b[6n')) term.type('\x1b[24;1R');
  });
  term.type('echo ready\n');
  await term.waitFor(/ready\r?\n/);
  await new Promise((r) => setTimeout(r, 500));
  const openMs = performance.now() - t0;
  const samples = await roundTrips(term, KEYS);
  term.close();
  report(samples, openMs);
} finally {
  if (envId) await api('DELETE', `/api/v1/environments/${envId}`, ADMIN).catch(() => {});
  await platform.stop();
  await removeNamespace(NAMESPACE);
  rmSync(dir, { recursive: true, force: true });
  await releaseRunDir(runDir);
}

/** Sends one letter at a time and waits for the shell's echo of it; the line is erased every 50 letters. */
async function roundTrips(term: TerminalClient, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    if (i > 0 && i % 50 === 0) {
      term.type('\x15'); // Ctrl-U: erase the line, keeping the prompt short
      await new Promise((r) => setTimeout(r, 50));
    }
    const echoed = new Promise<number>((resolve) => term.ws.once('message', () => resolve(performance.now())));
    const start = performance.now();
    term.type(String.fromCharCode(97 + (i % 26)));
    out.push((await echoed) - start);
  }
  return out;
}

function report(samples: number[], openMs: number): void {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
  const figures = {
    measuredAt: new Date().toISOString(),
    keystrokes: s.length,
    p50Ms: +q(50).toFixed(2),
    p90Ms: +q(90).toFixed(2),
    p99Ms: +q(99).toFixed(2),
    maxMs: +s.at(-1)!.toFixed(2),
    openMs: +openMs.toFixed(1),
    path: 'ws client → controller (WebSocket) → agent (gRPC Exec, loopback mTLS) → pty → docker exec → shell → back',
  };
  console.log(JSON.stringify(figures, null, 2));
  const dirOut = path.resolve('bench/results');
  mkdirSync(dirOut, { recursive: true });
  writeFileSync(path.join(dirOut, 'terminal-ws.json'), `${JSON.stringify(figures, null, 2)}\n`);
}
