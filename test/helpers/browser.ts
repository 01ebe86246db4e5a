import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

/**
 * A real headless Chromium for the console's browser tests: Debian's `chromium` package (`.ci/run`
 * installs it; browser downloads are impossible here), driven by playwright-core.
 */
export const CHROMIUM = process.env.REMOTEGPU_CHROMIUM ?? '/usr/bin/chromium';

/** Where the browser tests save their screenshots (a CI artefact; not committed). */
export const SCREENSHOT_DIR = path.resolve('test-results/screenshots');

export async function launchBrowser(): Promise<Browser> {
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/** Saves a full-page screenshot as test-results/screenshots/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Signs `page` in to the console at `baseUrl` with an API token (the sign-in form, as a user would). */
export async function signIn(page: Page, baseUrl: string, token: string, lang: 'en' | 'zh' = 'en'): Promise<void> {
  await page.goto(`${baseUrl}/signin?lang=${lang}`);
  await page.getByLabel(lang === 'en' ? 'API token' : 'API 令牌').fill(token);
  await page.getByRole('button', { name: lang === 'en' ? 'Sign in' : '登录' }).click();
  await page.waitForURL((url) => !url.pathname.startsWith('/signin'));
}
