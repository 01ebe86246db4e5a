import type { Child } from 'hono/jsx';
import type { Principal } from '../access/principal.js';
import { CSRF_FIELD } from '../access/console-session.js';
import { translator, type Lang, type Texts } from './i18n.js';

const TEXT: Texts<'environments' | 'sshKeys' | 'hosts' | 'users' | 'workspaces' | 'images' | 'datasets' | 'apiDocs' | 'signOut' | 'admin' | 'skip' | 'language' | 'signedInAs'> = {
  en: {
    environments: 'Environments', sshKeys: 'SSH keys', hosts: 'Hosts', users: 'Users', workspaces: 'Workspaces', images: 'Images',
    datasets: 'Datasets', apiDocs: 'API docs', signOut: 'Sign out', admin: 'Admin', skip: 'Skip to content', language: 'Language', signedInAs: 'Signed in as',
  },
  zh: {
    environments: '环境', sshKeys: 'SSH 公钥', hosts: '主机', users: '用户', workspaces: '工作空间', images: '镜像',
    datasets: '数据集', apiDocs: 'API 文档', signOut: '退出登录', admin: '管理', skip: '跳到正文', language: '语言', signedInAs: '当前用户',
  },
};

/** What every signed-in page is rendered with (built by the console's session middleware). */
export interface PageContext {
  readonly lang: Lang;
  readonly principal: Principal;
  /** The session's CSRF token: a hidden field of every form, the X-CSRF-Token header of every script call. */
  readonly csrf: string;
  /** The request path, for the language switch and the active menu entry. */
  readonly path: string;
}

/** The HTML document around a page: head, assets, skip link. */
export function Document(props: { lang: Lang; title: string; csrf?: string; children: Child }) {
  return (
    <html lang={props.lang === 'zh' ? 'zh-CN' : 'en'}>
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        {props.csrf ? <meta name="csrf-token" content={props.csrf} /> : null}
        <title>{`${props.title} · remotegpu`}</title>
        <link rel="stylesheet" href="/assets/console/app.css" />
        <script type="module" src="/assets/console/app.js"></script>
      </head>
      <body>{props.children}</body>
    </html>
  );
}

/** A signed-in page: the menu (admin entries for admins), language switch, sign-out, then `children`. */
export function Page(props: { ctx: PageContext; title: string; children: Child }) {
  const { ctx } = props;
  const t = translator(TEXT, ctx.lang);
  const item = (href: string, label: string) => (
    <li><a href={href} aria-current={ctx.path === href || ctx.path.startsWith(`${href}/`) ? 'page' : undefined}>{label}</a></li>
  );
  const other: Lang = ctx.lang === 'zh' ? 'en' : 'zh';
  return (
    <Document lang={ctx.lang} title={props.title} csrf={ctx.csrf}>
      <a class="skip" href="#main">{t('skip')}</a>
      <header class="top">
        <a class="brand" href="/">remotegpu</a>
        <nav aria-label="main">
          <ul>
            {item('/environments', t('environments'))}
            {item('/ssh-keys', t('sshKeys'))}
            {ctx.principal.role === 'admin' ? (
              <>
                {item('/admin/hosts', t('hosts'))}
                {item('/admin/users', t('users'))}
                {item('/admin/workspaces', t('workspaces'))}
                {item('/admin/images', t('images'))}
                {item('/admin/datasets', t('datasets'))}
              </>
            ) : null}
            <li><a href="/api/docs">{t('apiDocs')}</a></li>
          </ul>
        </nav>
        <div class="session">
          <a href={`${ctx.path}?lang=${other}`} hreflang={other} aria-label={t('language')} data-lang-switch={other}>{other === 'en' ? 'English' : '中文'}</a>
          <span class="who">{t('signedInAs')} <strong>{ctx.principal.name}</strong></span>
          <form method="post" action="/signout">
            <input type="hidden" name={CSRF_FIELD} value={ctx.csrf} />
            <button type="submit" class="link">{t('signOut')}</button>
          </form>
        </div>
      </header>
      <main id="main">
        <h1>{props.title}</h1>
        {props.children}
      </main>
    </Document>
  );
}
