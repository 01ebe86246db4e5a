import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';

/** One keystroke's timings, in ms, all taken inside the page (bench/terminal-probe.page.js). */
export interface Sample {
  /** keydown → the character in .xterm-rows (what a user sees, before paint). */
  readonly total: number;
  /** keydown → WebSocket.send (xterm.js's key handling, the page's script); null when no send was seen. */
  readonly toSend: number | null;
  /** WebSocket.send → the next message (loopback, controller, gRPC, agent, docker exec, shell echo, back). */
  readonly wire: number | null;
  /** That message → the character in the DOM (xterm.js parsing and rendering). */
  readonly toDom: number | null;
}

const PAGE_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'terminal-probe.page.js');

/** Before any page script runs: wraps the page's WebSocket class (call before page.goto). */
export async function addProbe(page: Page): Promise<void> {
  await page.addInitScript({ path: PAGE_SCRIPT });
}

/** Starts observing the terminal's rows (once the terminal is open). */
export async function installProbe(page: Page, rowsSelector: string): Promise<void> {
  await page.evaluate(`window.__rgpuProbe.install(${JSON.stringify(rowsSelector)})`);
}

/** What the terminal shows, as text. */
export async function terminalText(page: Page): Promise<string> {
  return String(await page.evaluate('window.__rgpuProbe.text()'));
}

/** One keystroke, measured: arms the probe, types `ch`, waits (10 s at most) for it in the terminal's DOM. */
export async function measureKeystroke(page: Page, ch: string): Promise<Sample> {
  await page.evaluate(`window.__rgpuProbe.arm(${JSON.stringify(ch)})`);
  await page.keyboard.type(ch);
  return (await page.evaluate('window.__rgpuProbe.wait(10000)')) as Sample;
}
