import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { startConsolePlatform } from '../scripts/console-platform.js';
import { addProbe, installProbe, measureKeystroke, terminalText, type Sample } from './terminal-probe.js';

// Keystroke round trip, browser → container → browser, on loopback: the real platform (controller,
// agent, Docker; 10 simulated A40s), the console's environment detail page in headless Chromium,
// its terminal open on a running environment. For each keystroke: the time from the page's keydown
// to the character appearing in the terminal's DOM (.xterm-rows), measured inside the page
// (performance.now() and a MutationObserver), so playwright's own round trips are not counted.
// Run: npm run bench:terminal [-- keystrokes]   (Docker engine and /usr/bin/chromium needed)

const KEYSTROKES = Number(process.argv[2] ?? 100);
const WARMUP = 5;
/** Characters typed on the shell's command line; the line is cleared (Ctrl-U) every LINE of them. */
const CHARS = 'abcdefghijklmnopqrstuvwxyz';
const LINE = 25;
const PORTS = [19400, 19499] as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Nearest-rank percentile. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function summary(values: readonly (number | null)[]) {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const round = (x: number) => Math.round(x * 10) / 10;
  return { n: v.length, p50: round(percentile(v, 50)), p90: round(percentile(v, 90)), p99: round(percentile(v, 99)), max: round(v[v.length - 1]!), mean: round(v.reduce((a, b) => a + b, 0) / v.length) };
}

/** Opens the environment's detail page and its terminal; resolves once the shell prompt shows. */
async function openTerminal(page: Page, baseUrl: string, envId: string): Promise<void> {
  await addProbe(page);
  await page.goto(`${baseUrl}/environments/${envId}`);
  const open = page.getByRole('button', { name: 'Open terminal' });
  if (await open.isVisible()) await open.click();
  await page.locator('#terminal[data-state="open"]').waitFor({ timeout: 30_000 });
  await page.locator('#terminal .xterm-rows').waitFor();
  await installProbe(page, '#terminal .xterm-rows');
  await page.locator('#terminal .xterm').click();
  // The shell's prompt: busybox sh prints "/ # " (root) or "$ ".
  const deadline = Date.now() + 30_000;
  while (!/[#$]/.test(await terminalText(page))) {
    if (Date.now() > deadline) throw new Error(`no shell prompt in the terminal: ${JSON.stringify(await terminalText(page))}`);
    await sleep(200);
  }
  await sleep(500);
}

/** Types KEYSTROKES characters (after WARMUP unmeasured ones), one at a time, clearing the line now and then. */
async function typeAndMeasure(page: Page): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let i = 0; i < WARMUP + KEYSTROKES; i++) {
    if (i > 0 && i % LINE === 0) {
      await page.keyboard.press('Control+U');
      await sleep(300);
    }
    const sample = await measureKeystroke(page, CHARS[i % CHARS.length]!);
    if (i >= WARMUP) samples.push(sample);
    // A typist's pace, not a burst: each keystroke alone on the wire.
    await sleep(30 + Math.random() * 40);
  }
  await page.keyboard.press('Control+U');
  return samples;
}

function report(samples: readonly Sample[], chromium: string): string {
  const rows: [string, ReturnType<typeof summary>][] = [
    ['**keydown → character in .xterm-rows**', summary(samples.map((s) => s.total))],
    ['keydown → WebSocket.send (xterm.js key handling)', summary(samples.map((s) => s.toSend))],
    ['WebSocket.send → next message (controller, gRPC, agent, exec, echo)', summary(samples.map((s) => s.wire))],
    ['that message → character in the DOM (xterm.js write + render)', summary(samples.map((s) => s.toDom))],
  ];
  const line = (label: string, s: ReturnType<typeof summary>) => (s ? `| ${label} | ${s.n} | ${s.p50} | ${s.p90} | ${s.p99} | ${s.max} | ${s.mean} |` : `| ${label} | 0 | | | | | |`);
  return [
    '# Terminal keystroke latency (browser → container → browser, loopback)',
    '',
    `Measured ${new Date().toISOString()} with \`npm run bench:terminal\` (bench/terminal-latency.ts): ${samples.length} keystrokes`,
    `(after ${WARMUP} unmeasured), typed one at a time 30-70 ms apart on the shell's command line of a running`,
    'environment (devbox image, busybox sh), in the console\'s terminal (environment detail page), headless',
    `Chromium ${chromium}; controller, agent and Docker on this machine (${cpus().length} CPUs, ${cpus()[0]?.model ?? 'unknown CPU'}).`,
    'Times in ms, taken inside the page with performance.now(): from the keydown event to the character',
    'appearing in the terminal\'s DOM (MutationObserver on .xterm-rows), so playwright\'s own round trips are',
    'excluded; the rows below split that time at the page\'s WebSocket send and the next message received.',
    '',
    '| stage | n | p50 | p90 | p99 | max | mean |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(([label, s]) => line(label, s)),
    '',
    'The last stage is about one animation frame: xterm.js renders the rows it was given on a later frame',
    '(headless Chromium draws at 60 Hz, 16.7 ms a frame); a display at a higher refresh rate shortens it. The wire stage is',
    'everything the platform adds: the controller\'s WebSocket, gRPC to the agent, the agent\'s docker exec',
    'stream, the pty echo, and the way back.',
    '',
  ].join('\n');
}

const cp = await startConsolePlatform('bench-term', PORTS);
try {
  const envId = await cp.createRunning('latency', 1);
  const page = await cp.signedInPage();
  await openTerminal(page, cp.baseUrl, envId);
  const samples = await typeAndMeasure(page);
  const text = report(samples, cp.browser.version());
  console.log(text);
  const file = path.resolve('bench/results/terminal-latency.md');
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  console.log(`written to ${file}`);
} finally {
  await cp.stop();
}
