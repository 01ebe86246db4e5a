import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { getCookie } from 'hono/cookie';
import { csrf } from 'hono/csrf';
import { secureHeaders } from 'hono/secure-headers';
import { SESSION_COOKIE } from '../access/console-session.js';
import type { ApiDeps } from '../api/deps.js';
import { apiDocsPage } from './api-docs.js';
import { assetRoutes } from './assets.js';
import { Document } from './layout.js';
import { langOf, translator, type Texts } from './i18n.js';
import { endSession, formCsrfOk, rememberLang, requireSession, startSession, type ConsoleEnv } from './session.js';
import { userPages } from './user/user.routes.js';
import { adminPages } from './admin/admin.routes.js';

const TEXT: Texts<'title' | 'token' | 'tokenHint' | 'submit' | 'invalid' | 'missing'> = {
  en: {
    title: 'Sign in', token: 'API token', tokenHint: 'The token an admin created for you (POST /api/v1/admin/users/{id}/tokens).',
    submit: 'Sign in', invalid: 'This token is invalid, revoked or expired.', missing: 'Enter your API token.',
  },
  zh: {
    title: '登录', token: 'API 令牌', tokenHint: '管理员为你创建的令牌（POST /api/v1/admin/users/{id}/tokens）。',
    submit: '登录', invalid: '令牌无效、已吊销或已过期。', missing: '请输入 API 令牌。',
  },
};

/** The paths the console serves (its pages); everything else belongs to the API. */
export const CONSOLE_PATHS = ['/', '/signin', '/signout', '/environments', '/environments/*', '/ssh-keys', '/ssh-keys/*', '/admin', '/admin/*', '/api/docs'];

const CSP = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  // xterm.js sets element styles at run time.
  styleSrc: ["'self'", "'unsafe-inline'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'", 'ws:', 'wss:'],
  frameAncestors: ["'none'"],
};

/**
 * Pages hold the caller's data and the session's CSRF token: no cache keeps them (a shared proxy,
 * or the browser's history showing them after sign-out).
 */
const noStore: MiddlewareHandler = async (c, next) => {
  await next();
  if (!c.res.headers.has('cache-control')) c.header('cache-control', 'no-store');
};

const HERE = 'http://console.invalid';

/**
 * A same-site path to go back to after sign-in, never another site: the path is read as a browser
 * reads a Location header (which drops tabs and newlines and takes `\` for `/`, so `/<TAB>/x` is
 * `//x`), and only one that stays on this origin is kept, as the parser normalised it.
 */
function safeNext(next: string | undefined): string {
  if (!next?.startsWith('/')) return '/environments';
  let url: URL;
  try {
    url = new URL(next, HERE);
  } catch {
    return '/environments';
  }
  return url.origin === HERE ? `${url.pathname}${url.search}${url.hash}` : '/environments';
}

function SignIn(props: { c: Context; error?: string }) {
  const lang = langOf(props.c);
  const t = translator(TEXT, lang);
  return (
    <Document lang={lang} title={t('title')}>
      <main id="main" class="signin">
        <h1>remotegpu</h1>
        <form method="post" action={`/signin?next=${encodeURIComponent(safeNext(props.c.req.query('next')))}`} class="card">
          <label for="token">{t('token')}</label>
          <input id="token" name="token" type="password" autocomplete="current-password" required aria-describedby="token-hint" />
          <p id="token-hint" class="hint">{t('tokenHint')}</p>
          {props.error ? <p role="alert" class="error">{t(props.error === 'missing' ? 'missing' : 'invalid')}</p> : null}
          <button type="submit">{t('submit')}</button>
        </form>
      </main>
    </Document>
  );
}

/**
 * The web console, served at `/` by the controller: sign-in and sign-out, the user's pages and the
 * admin's pages (server-rendered with hono/jsx; their scripts call the REST API with the session
 * cookie and the CSRF header), and the static assets.
 */
export function consoleRoutes(deps: ApiDeps): Hono<ConsoleEnv> {
  const app = new Hono<ConsoleEnv>();
  app.route('/', assetRoutes());
  const pages = new Hono<ConsoleEnv>();
  // Only the console's own paths get its headers and checks (the API shares this app).
  for (const path of CONSOLE_PATHS) {
    pages.use(path, secureHeaders({ contentSecurityPolicy: CSP }));
    pages.use(path, rememberLang());
    // Form posts must come from the console's own origin (Origin header), on top of the CSRF field.
    pages.use(path, csrf());
    pages.use(path, noStore);
  }
  pages.get('/', (c) => c.redirect(getCookie(c, SESSION_COOKIE) ? '/environments' : '/signin', 303));
  pages.get('/signin', (c) => c.html(<SignIn c={c} />));
  pages.post('/signin', async (c) => {
    const form = await c.req.parseBody();
    const token = typeof form.token === 'string' ? form.token.trim() : '';
    if (!token) return c.html(<SignIn c={c} error="missing" />, 400);
    const principal = await deps.services.users.authenticate(token);
    if (!principal) return c.html(<SignIn c={c} error="invalid" />, 401);
    startSession(c, token);
    return c.redirect(safeNext(c.req.query('next')), 303);
  });
  pages.post('/signout', requireSession(deps), async (c) => {
    if (!(await formCsrfOk(c))) return c.text('403 Forbidden: missing or wrong CSRF token', 403);
    endSession(c);
    return c.redirect('/signin', 303);
  });
  pages.get('/api/docs', (c) => apiDocsPage(c, deps));
  pages.route('/', userPages(deps));
  pages.route('/admin', adminPages(deps));
  app.route('/', pages);
  return app;
}
