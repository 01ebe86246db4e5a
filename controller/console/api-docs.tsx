import type { Context } from 'hono';
import { getCookie } from 'hono/cookie';
import { SESSION_COOKIE, csrfTokenFor } from '../access/console-session.js';
import type { ApiDeps } from '../api/deps.js';
import { langOf, translator, type Texts } from './i18n.js';

const TEXT: Texts<'title' | 'back' | 'intro' | 'noscript'> = {
  en: {
    title: 'API documentation',
    back: 'Back to the console',
    intro: 'Every operation of the REST API, from the OpenAPI document at /api/v1/openapi.json. "Authorize" takes an API token (sent as Authorization: Bearer); signed in to the console, "Try it out" also works with your session.',
    noscript: 'This page needs JavaScript. The OpenAPI document itself is at /api/v1/openapi.json.',
  },
  zh: {
    title: 'API 文档',
    back: '返回控制台',
    intro: 'REST API 的全部操作，来自 OpenAPI 文档 /api/v1/openapi.json。点 "Authorize" 填入 API 令牌（以 Authorization: Bearer 发送）；已登录控制台时，"Try it out" 也可直接使用当前会话。',
    noscript: '本页需要 JavaScript。OpenAPI 文档本身在 /api/v1/openapi.json。',
  },
};

/**
 * GET /api/docs: Swagger UI over /api/v1/openapi.json. Every asset is served from the package
 * (swagger-ui-dist under /assets/swagger-ui/, the initializer /assets/console/api-docs.js: the
 * console's CSP allows no inline script). The page needs no session; for a signed-in browser it
 * carries the session's CSRF token, which the initializer adds to the requests "Try it out" sends.
 */
export async function apiDocsPage(c: Context, deps: ApiDeps) {
  const lang = langOf(c);
  const t = translator(TEXT, lang);
  const token = getCookie(c, SESSION_COOKIE);
  const signedIn = token ? (await deps.services.users.authenticate(token)) !== undefined : false;
  return c.html(
    '<!doctype html>' +
      (
        <html lang={lang === 'zh' ? 'zh-CN' : 'en'}>
          <head>
            <meta charset="utf-8" />
            <meta name="viewport" content="width=device-width, initial-scale=1" />
            {signedIn && token ? <meta name="csrf-token" content={csrfTokenFor(token)} /> : null}
            <title>{`${t('title')} · remotegpu`}</title>
            <link rel="icon" type="image/png" href="/assets/swagger-ui/favicon-32x32.png" />
            <link rel="stylesheet" href="/assets/swagger-ui/swagger-ui.css" />
            <link rel="stylesheet" href="/assets/console/api-docs.css" />
            <script src="/assets/swagger-ui/swagger-ui-bundle.js" defer></script>
            <script src="/assets/console/api-docs.js" defer></script>
          </head>
          <body>
            <header class="api-docs-top">
              <a href={signedIn ? '/environments' : '/'}>{`← ${t('back')}`}</a>
              <a href={`/api/docs?lang=${lang === 'zh' ? 'en' : 'zh'}`} hreflang={lang === 'zh' ? 'en' : 'zh'}>{lang === 'zh' ? 'English' : '中文'}</a>
            </header>
            <main id="main">
              <h1>{t('title')}</h1>
              <p>{t('intro')}</p>
              <noscript>{t('noscript')}</noscript>
              <div id="swagger-ui" data-spec-url="/api/v1/openapi.json"></div>
            </main>
          </body>
        </html>
      ).toString(),
  );
}
