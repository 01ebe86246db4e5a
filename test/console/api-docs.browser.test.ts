import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { listenHttp, type HttpListener } from '../../controller/http-server.js';
import { createTestApi, type TestApi } from '../helpers/api.js';
import { CHROMIUM, launchBrowser, screenshot, signIn } from '../helpers/browser.js';
import { DB_TARGETS } from '../helpers/databases.js';

// /api/docs in a real headless Chromium, served over a real HTTP listener: Swagger UI renders the
// operations of the OpenAPI document under the console's CSP, with no console error and no request
// leaving 127.0.0.1.

const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium; CI does)`);

describe.skipIf(!hasChromium).each(DB_TARGETS.filter((t) => t.name === 'pglite'))('API documentation in Chromium ($name)', (target) => {
  let api: TestApi;
  let http: HttpListener;
  let browser: Browser;
  beforeAll(async () => {
    api = await createTestApi(target);
    http = await listenHttp(api.app.fetch, '127.0.0.1', 0, undefined);
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await http?.close();
    await api?.close();
  });

  it('renders the operations, the bearer scheme and no error, with every request to 127.0.0.1', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    const errors: string[] = [];
    const outside: string[] = [];
    const seen: string[] = [];
    const origin = new URL(http.url).origin;
    // Every request the page makes: those to another origin are recorded and refused.
    await context.route('**/*', (route) => {
      const url = route.request().url();
      seen.push(url);
      if (url.startsWith('data:') || new URL(url).origin === origin) return route.continue();
      outside.push(url);
      return route.abort();
    });
    await signIn(page, http.url, api.adminToken, 'en');
    // Errors of the docs page only (the sign-in page is not under test here).
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`${m.text()} (${m.location().url})`);
    });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${http.url}/api/docs`);
    const operation = page.locator('.opblock-summary-path[data-path="/api/v1/environments"]').first();
    await operation.waitFor({ timeout: 30_000 });
    expect(await page.locator('.opblock-tag-section').count()).toBeGreaterThan(3);
    await expect.poll(() => page.locator('.opblock-tag', { hasText: 'environments' }).count()).toBeGreaterThan(0);
    // "Authorize" exists because the document declares the bearer scheme; its dialog names it.
    await page.getByRole('button', { name: /Authorize/ }).first().click();
    await page.locator('.modal-ux').getByText('bearerAuth').first().waitFor();
    await page.locator('.modal-ux').getByRole('button', { name: 'Close' }).first().click();
    // "Try it out" on GET /api/v1/environments with the session (no bearer given): 200.
    const block = page.locator('.opblock-get', { has: page.locator('[data-path="/api/v1/environments"]') }).first();
    await block.locator('.opblock-summary-path').click();
    await block.getByRole('button', { name: 'Try it out' }).click();
    await block.getByRole('button', { name: 'Execute' }).click();
    await block.locator('.live-responses-table tr.response td.response-col_status').first().waitFor();
    expect(await block.locator('.live-responses-table tr.response td.response-col_status').first().innerText()).toContain('200');
    await screenshot(page, 'api-docs');
    expect(errors).toEqual([]);
    expect(outside).toEqual([]);
    // The route saw the page's own requests (the check above is not vacuous).
    expect(seen).toEqual(expect.arrayContaining([`${origin}/api/v1/openapi.json`, `${origin}/assets/swagger-ui/swagger-ui-bundle.js`]));
    await context.close();
  });
});
