import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csrfTokenFor } from '../../controller/access/console-session.js';
import { createTestApi, type TestApi } from '../helpers/api.js';
import { DB_TARGETS } from '../helpers/databases.js';

// The console's session: sign-in keeps the API token in an HttpOnly, SameSite=Strict cookie; the
// API accepts that cookie, and a state-changing call made with it needs the session's CSRF token.
describe.each(DB_TARGETS.filter((t) => t.name === 'pglite'))('console session ($name)', (target) => {
  let api: TestApi;
  beforeAll(async () => {
    api = await createTestApi(target);
  });
  afterAll(() => api.close());

  const form = (fields: Record<string, string>, headers: Record<string, string> = {}) => ({
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://localhost', ...headers },
    body: new URLSearchParams(fields).toString(),
  });

  it('signs in with a valid token: an HttpOnly SameSite=Strict cookie and a redirect to the next page', async () => {
    const res = await api.app.request('http://localhost/signin?next=%2Fadmin%2Fhosts', form({ token: api.adminToken }));
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/admin/hosts');
    const cookie = res.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^remotegpu_session=/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
  });

  it('refuses a wrong token with the sign-in page again and no cookie', async () => {
    const res = await api.app.request('http://localhost/signin', form({ token: 'rgpu_wrong' }));
    expect(res.status).toBe(401);
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(await res.text()).toContain('role="alert"');
  });

  it('never redirects to another site after sign-in', async () => {
    const res = await api.app.request('http://localhost/signin?next=%2F%2Fevil.example', form({ token: api.adminToken }));
    expect(res.headers.get('location')).toBe('/environments');
  });

  it('never redirects to another site through a next a browser reads as //host (tab, newline, backslash)', async () => {
    // A browser drops tabs and newlines from a Location and reads `\` as `/`: each of these is `//evil.example`.
    for (const next of ['/\t/evil.example', '/\n/evil.example', '/\r\n/evil.example', '/\\/evil.example', '/\t\\evil.example']) {
      const res = await api.app.request(`http://localhost/signin?next=${encodeURIComponent(next)}`, form({ token: api.adminToken }));
      expect(res.status, JSON.stringify(next)).toBe(303);
      expect(res.headers.get('location'), JSON.stringify(next)).toBe('/environments');
      const page = await (await api.app.request(`http://localhost/signin?next=${encodeURIComponent(next)}`)).text();
      expect(page).toContain('action="/signin?next=%2Fenvironments"');
    }
    const res = await api.app.request(`http://localhost/signin?next=${encodeURIComponent('/environments/e1?tab=logs#x')}`, form({ token: api.adminToken }));
    expect(res.headers.get('location')).toBe('/environments/e1?tab=logs#x');
  });

  it('lets no cache keep the console pages (they hold the CSRF token and the caller\'s data)', async () => {
    const cookie = `remotegpu_session=${api.adminToken}`;
    for (const path of ['/environments', '/ssh-keys', '/admin/hosts', '/signin', '/api/docs']) {
      const res = await api.app.request(`http://localhost${path}`, { headers: { cookie } });
      expect(res.status, path).toBe(200);
      expect(res.headers.get('cache-control'), path).toBe('no-store');
    }
    // The assets keep their own policy; the API is untouched.
    expect((await api.app.request('http://localhost/assets/console/app.js')).headers.get('cache-control')).toBe('no-cache');
  });

  it('serves the console at /: the sign-in page when signed out, the environments when signed in', async () => {
    const out = await api.app.request('http://localhost/');
    expect(out.status).toBe(303);
    expect(out.headers.get('location')).toBe('/signin');
    const signedIn = await api.app.request('http://localhost/', { headers: { cookie: `remotegpu_session=${api.adminToken}` } });
    expect(signedIn.headers.get('location')).toBe('/environments');
    const page = await api.app.request('http://localhost/signin');
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toContain('<label for="token">');
  });

  it('sends a browser without a session to the sign-in page', async () => {
    const res = await api.app.request('http://localhost/environments');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/signin?next=%2Fenvironments');
  });

  it('accepts the cookie on API reads, and on writes only with the CSRF header', async () => {
    const cookie = `remotegpu_session=${api.adminToken}`;
    const read = await api.app.request('http://localhost/api/v1/environments', { headers: { cookie } });
    expect(read.status).toBe(200);
    const body = JSON.stringify({ name: 'k', public_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl k@h' });
    const headers = { cookie, 'content-type': 'application/json' };
    const refused = await api.app.request('http://localhost/api/v1/ssh-keys', { method: 'POST', headers, body });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { message: string }).message).toMatch(/CSRF/);
    const accepted = await api.app.request('http://localhost/api/v1/ssh-keys', { method: 'POST', headers: { ...headers, 'x-csrf-token': csrfTokenFor(api.adminToken) }, body });
    expect(accepted.status).toBe(201);
  });

  it('signs out only with the CSRF field, and then drops the cookie', async () => {
    const cookie = `remotegpu_session=${api.adminToken}`;
    const without = await api.app.request('http://localhost/signout', form({}, { cookie }));
    expect(without.status).toBe(403);
    const res = await api.app.request('http://localhost/signout', form({ _csrf: csrfTokenFor(api.adminToken) }, { cookie }));
    expect(res.status).toBe(303);
    expect(res.headers.get('set-cookie')).toMatch(/remotegpu_session=;/);
  });

  it('serves the vendored xterm.js and the console script from the package, and nothing outside it', async () => {
    expect((await api.app.request('http://localhost/assets/xterm/lib/xterm.js')).status).toBe(200);
    expect((await api.app.request('http://localhost/assets/console/app.js')).headers.get('content-type')).toMatch(/javascript/);
    expect((await api.app.request('http://localhost/assets/console/..%2F..%2F..%2Fpackage.json')).status).toBe(404);
    // Malformed percent-encoding and names of Object.prototype are unknown files (404), not faults (500).
    for (const path of ['/assets/console/%E0%A4%A.js', '/assets/console/%.js', '/assets/constructor/x.js', '/assets/__proto__/x.js', '/assets/toString/x.js']) {
      expect((await api.app.request(`http://localhost${path}`)).status, path).toBe(404);
    }
  });
});
