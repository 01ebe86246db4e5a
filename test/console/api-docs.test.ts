import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csrfTokenFor } from '../../controller/access/console-session.js';
import { createTestApi, type TestApi } from '../helpers/api.js';
import { DB_TARGETS } from '../helpers/databases.js';

// GET /api/docs: Swagger UI over the OpenAPI document, every asset served from the package, with
// the console's secure headers (no inline script allowed), and the document's bearer scheme so
// "Authorize" works.
describe.each(DB_TARGETS.filter((t) => t.name === 'pglite'))('API documentation page ($name)', (target) => {
  let api: TestApi;
  beforeAll(async () => {
    api = await createTestApi(target);
  });
  afterAll(() => api.close());

  /** Every src/href of the page. */
  const references = (html: string) => [...html.matchAll(/(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);

  it('serves Swagger UI at /api/docs with the console headers, not the API 404', async () => {
    const res = await api.request('GET', '/api/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
    expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.text).toMatch(/^<!doctype html>/i);
    expect(res.text).toContain('id="swagger-ui"');
    expect(res.text).toContain('data-spec-url="/api/v1/openapi.json"');
    // No inline script: every <script> has a src.
    expect(res.text.match(/<script(?![^>]*\ssrc=)[^>]*>/g)).toBeNull();
  });

  it('references nothing outside the controller: no http(s):// URL in the page or its initializer', async () => {
    const page = await api.request('GET', '/api/docs');
    const init = await api.request('GET', '/assets/console/api-docs.js');
    expect(page.text).not.toMatch(/https?:\/\//);
    expect(init.text).not.toMatch(/https?:\/\//);
    const refs = references(page.text);
    expect(refs.length).toBeGreaterThanOrEqual(5);
    for (const ref of refs) expect(ref).toMatch(/^\/(?!\/)/);
  });

  it('serves every asset the page references, with its type', async () => {
    const page = await api.request('GET', '/api/docs');
    const expected: Record<string, RegExp> = { '.js': /^text\/javascript/, '.css': /^text\/css/, '.png': /^image\/png/ };
    const assets = references(page.text).filter((r) => r.startsWith('/assets/'));
    expect(assets).toEqual(expect.arrayContaining(['/assets/swagger-ui/swagger-ui-bundle.js', '/assets/swagger-ui/swagger-ui.css', '/assets/console/api-docs.js']));
    for (const asset of assets) {
      const res = await api.app.request(asset);
      expect(res.status, asset).toBe(200);
      expect(res.headers.get('content-type'), asset).toMatch(expected[asset.slice(asset.lastIndexOf('.'))]!);
      expect((await res.arrayBuffer()).byteLength, asset).toBeGreaterThan(100);
    }
  });

  it('is in English or Chinese, by ?lang= (remembered) or Accept-Language', async () => {
    const en = await api.request('GET', '/api/docs?lang=en');
    expect(en.text).toContain('<h1>API documentation</h1>');
    expect(en.headers.get('set-cookie')).toMatch(/remotegpu_lang=en/);
    const zh = await api.request('GET', '/api/docs', { headers: { 'accept-language': 'zh-CN' } });
    expect(zh.text).toContain('<h1>API 文档</h1>');
  });

  it('carries the CSRF token of a signed-in browser only', async () => {
    const anonymous = await api.request('GET', '/api/docs');
    expect(anonymous.text).not.toContain('csrf-token');
    const signedIn = await api.request('GET', '/api/docs', { headers: { cookie: `remotegpu_session=${api.adminToken}` } });
    expect(signedIn.text).toContain(`<meta name="csrf-token" content="${csrfTokenFor(api.adminToken)}"/>`);
    const revoked = await api.request('GET', '/api/docs', { headers: { cookie: 'remotegpu_session=rgpu_not-a-token' } });
    expect(revoked.text).not.toContain('csrf-token');
  });

  it('declares the bearer scheme in the OpenAPI document, for every operation', async () => {
    const doc = (await api.request('GET', '/api/v1/openapi.json')).body;
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    expect(Object.keys(doc.paths)).toContain('/api/v1/environments');
  });

  it('leaves other /api paths to the API: an unknown one is still the envelope 404', async () => {
    const res = await api.request('GET', '/api/docs/nothing');
    expect(res.status).toBe(404);
    expect(res.body.code).toBe(40401);
    expect(res.headers.get('content-security-policy')).toBeNull();
  });
});
