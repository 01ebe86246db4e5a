import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { startConsolePlatform } from './console-platform.js';

// The README's console screenshots (docs/screenshots/*.png, 1280×800): the environments list with
// running environments, and the admin's hosts page with the simulated 10×A40 host (or, where that
// page does not exist, an environment's detail page with its terminal). The real platform, as
// `npm start` runs it, with its own namespace and ports 19400-19499.
// Run: npx tsx scripts/console-screenshots.ts   (Docker engine and /usr/bin/chromium needed)

const OUT = path.resolve('docs/screenshots');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function shoot(page: Page, name: string): Promise<void> {
  // Live updates and fonts settle first; the viewport only (1280×800), not the full page.
  await sleep(1500);
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file });
  console.log(`saved ${file}`);
}

/** The environment's detail page with its terminal open, `ls /dev/nvidia*` run in it. */
async function detailWithTerminal(page: Page, baseUrl: string, envId: string): Promise<void> {
  await page.goto(`${baseUrl}/environments/${envId}`);
  const open = page.getByRole('button', { name: 'Open terminal' });
  if (await open.isVisible()) await open.click();
  await page.locator('#terminal[data-state="open"]').waitFor({ timeout: 30_000 });
  await page.locator('#terminal .xterm').click();
  await sleep(1000);
  await page.keyboard.type('ls /dev/nvidia*\n');
  await page.locator('#terminal .xterm-rows', { hasText: '/dev/nvidia1' }).waitFor();
  await page.locator('#terminal').scrollIntoViewIfNeeded();
}

const cp = await startConsolePlatform('console-shots', [19400, 19499]);
try {
  mkdirSync(OUT, { recursive: true });
  const training = await cp.createRunning('pytorch-training', 2);
  await cp.createRunning('notebook', 1);
  const page = await cp.signedInPage({ width: 1280, height: 800 }, 'en');
  await page.goto(`${cp.baseUrl}/environments`);
  await page.getByText('pytorch-training').first().waitFor();
  await shoot(page, 'environments');
  const hosts = await page.goto(`${cp.baseUrl}/admin/hosts`);
  if (hosts?.ok() && (await page.locator('main').innerText()).includes('A40')) {
    await shoot(page, 'admin-hosts');
  } else {
    console.log('no admin hosts page with GPU tiles here: the environment detail page instead');
    await detailWithTerminal(page, cp.baseUrl, training);
    await shoot(page, 'environment-terminal');
  }
} finally {
  await cp.stop();
}
