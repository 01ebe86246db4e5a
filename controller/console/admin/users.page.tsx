import type { Hono } from 'hono';
import type { ApiDeps } from '../../api/deps.js';
import type { UserRow } from '../../db/schema.js';
import type { TokenInfo } from '../../users/users.service.js';
import { translator, type Texts } from '../i18n.js';
import type { PageContext } from '../layout.js';
import type { ConsoleEnv } from '../session.js';
import { AdminPage, Action, ApiForm, DataTable, Facts, Field, Pager, SelectField, notFoundText, pageParam, rowId, when } from './components.js';
import { unlessNotFound } from '../reads.js';

const TEXT: Texts<
  | 'title' | 'userTitle' | 'name' | 'email' | 'role' | 'state' | 'created' | 'active' | 'disabled' | 'create' | 'createUser' | 'user' | 'admin'
  | 'nameHint' | 'disable' | 'enable' | 'disableConfirm' | 'tokens' | 'tokenName' | 'prefix' | 'lastUsed' | 'expires' | 'revoked' | 'never'
  | 'createToken' | 'expiresIn' | 'expiresHint' | 'revoke' | 'revokeConfirm' | 'newToken' | 'newTokenHint' | 'copy' | 'back' | 'open' | 'actions'
> = {
  en: {
    title: 'Users', userTitle: 'User {name}', name: 'Name', email: 'Email', role: 'Role', state: 'State', created: 'Created', active: 'active',
    disabled: 'disabled', create: 'Create user', createUser: 'New user', user: 'user', admin: 'admin',
    nameHint: '1 to 64 characters: letters, digits, ".", "_" or "-".', disable: 'Disable', enable: 'Enable',
    disableConfirm: 'Disable user {name}? Their tokens are revoked and their environments stopped (data kept).', tokens: 'API tokens',
    tokenName: 'Token name', prefix: 'Prefix', lastUsed: 'Last used', expires: 'Expires', revoked: 'Revoked', never: 'never',
    createToken: 'Create token', expiresIn: 'Expires in (days)', expiresHint: 'Leave empty for a token that never expires.', revoke: 'Revoke',
    revokeConfirm: 'Revoke token {name}? Programs using it stop working at once.', newToken: 'New token',
    newTokenHint: 'Copy it now: it is shown only once.', copy: 'Copy', back: 'All users', open: 'Tokens', actions: 'Actions',
  },
  zh: {
    title: '用户', userTitle: '用户 {name}', name: '用户名', email: '邮箱', role: '角色', state: '状态', created: '创建时间', active: '正常',
    disabled: '已禁用', create: '创建用户', createUser: '新用户', user: '普通用户', admin: '管理员',
    nameHint: '1 到 64 个字符：字母、数字、"."、"_" 或 "-"。', disable: '禁用', enable: '启用',
    disableConfirm: '确定禁用用户 {name}？其令牌将被吊销，环境将被停止（数据保留）。', tokens: 'API 令牌',
    tokenName: '令牌名称', prefix: '前缀', lastUsed: '最近使用', expires: '过期时间', revoked: '已吊销', never: '永不',
    createToken: '创建令牌', expiresIn: '有效期（天）', expiresHint: '留空表示永不过期。', revoke: '吊销',
    revokeConfirm: '确定吊销令牌 {name}？使用它的程序将立即失效。', newToken: '新令牌',
    newTokenHint: '请立即复制：令牌只显示这一次。', copy: '复制', back: '全部用户', open: '令牌', actions: '操作',
  },
};

type T = ReturnType<typeof translator<keyof (typeof TEXT)['en']>>;

function EnableDisable(props: { user: UserRow; t: T }) {
  const { user, t } = props;
  const path = `/api/v1/admin/users/${user.id}`;
  return user.disabled_at ? (
    <Action method="POST" path={`${path}/enable`} label={t('enable')} id={`enable-${user.id}`} />
  ) : (
    <Action method="DELETE" path={path} label={t('disable')} danger confirm={t('disableConfirm', { name: user.name })} id={`disable-${user.id}`} />
  );
}

function UsersList(props: { ctx: PageContext; users: readonly UserRow[]; total: number; page: number }) {
  const { ctx } = props;
  const t = translator(TEXT, ctx.lang);
  return (
    <AdminPage ctx={ctx} title={t('title')}>
      <DataTable
        caption={t('title')}
        lang={ctx.lang}
        id="users"
        rows={props.users}
        columns={[
          { label: 'ID', cell: (u) => u.id },
          { label: t('name'), cell: (u) => <a href={`/admin/users/${u.id}`}>{u.name}</a> },
          { label: t('email'), cell: (u) => u.email ?? '—' },
          { label: t('role'), cell: (u) => t(u.role) },
          { label: t('state'), cell: (u) => <span class={`status ${u.disabled_at ? 'status-error' : 'status-running'}`}>{t(u.disabled_at ? 'disabled' : 'active')}</span> },
          { label: t('created'), cell: (u) => when(u.created_at) },
          { label: t('actions'), cell: (u) => <><a href={`/admin/users/${u.id}`}>{t('open')}</a> <EnableDisable user={u} t={t} /></> },
        ]}
      />
      <Pager base="/admin/users" page={props.page} pageSize={50} total={props.total} lang={ctx.lang} />
      <section class="card">
        <h2>{t('createUser')}</h2>
        <ApiForm method="POST" path="/api/v1/admin/users" submit={t('create')} next="/admin/users/{id}" id="create-user">
          <Field id="user-name" name="name" label={t('name')} lang={ctx.lang} required hint={t('nameHint')} />
          <Field id="user-email" name="email" type="email" label={t('email')} lang={ctx.lang} />
          <SelectField id="user-role" name="role" label={t('role')} required options={[{ value: 'user', label: t('user') }, { value: 'admin', label: t('admin') }]} />
        </ApiForm>
      </section>
    </AdminPage>
  );
}

function TokenTable(props: { user: UserRow; tokens: readonly TokenInfo[]; t: T; lang: PageContext['lang'] }) {
  const { t, user } = props;
  return (
    <DataTable
      caption={t('tokens')}
      lang={props.lang}
      id="tokens"
      rows={props.tokens}
      columns={[
        { label: t('tokenName'), cell: (k) => k.name },
        { label: t('prefix'), cell: (k) => <code>{k.prefix}…</code> },
        { label: t('created'), cell: (k) => when(k.created_at) },
        { label: t('lastUsed'), cell: (k) => when(k.last_used_at) },
        { label: t('expires'), cell: (k) => (k.expires_at ? when(k.expires_at) : t('never')) },
        {
          label: t('actions'),
          cell: (k) =>
            k.revoked_at ? (
              `${t('revoked')} ${when(k.revoked_at)}`
            ) : (
              <Action method="DELETE" path={`/api/v1/admin/users/${user.id}/tokens/${k.id}`} label={t('revoke')} danger confirm={t('revokeConfirm', { name: k.name })} id={`revoke-${k.id}`} />
            ),
        },
      ]}
    />
  );
}

function UserDetail(props: { ctx: PageContext; user: UserRow; tokens: readonly TokenInfo[] }) {
  const { ctx, user } = props;
  const t = translator(TEXT, ctx.lang);
  return (
    <AdminPage ctx={ctx} title={t('userTitle', { name: user.name })}>
      <p><a href="/admin/users">← {t('back')}</a></p>
      <section class="card">
        <Facts items={[['ID', user.id], [t('email'), user.email ?? '—'], [t('role'), t(user.role)], [t('state'), t(user.disabled_at ? 'disabled' : 'active')], [t('created'), when(user.created_at)]]} />
        <EnableDisable user={user} t={t} />
      </section>
      <section class="card">
        <h2>{t('tokens')}</h2>
        <TokenTable user={user} tokens={props.tokens} t={t} lang={ctx.lang} />
        <h3>{t('createToken')}</h3>
        <ApiForm method="POST" path={`/api/v1/admin/users/${user.id}/tokens`} submit={t('createToken')} stay id="create-token">
          <Field id="token-name" name="name" label={t('tokenName')} lang={ctx.lang} required />
          <Field id="token-days" name="expires_in_days" type="number" min={1} max={3650} label={t('expiresIn')} lang={ctx.lang} hint={t('expiresHint')} />
        </ApiForm>
        <div id="new-token" class="new-token" hidden>
          <label for="new-token-value">{t('newToken')}</label>
          <input id="new-token-value" readonly aria-describedby="new-token-hint" />
          <button type="button" data-copy="#new-token-value">{t('copy')}</button>
          <p id="new-token-hint" class="hint">{t('newTokenHint')}</p>
        </div>
      </section>
    </AdminPage>
  );
}

/** GET /admin/users (list, create) and /admin/users/{id} (enable/disable, tokens: create shown once, revoke). */
export function userPages(app: Hono<ConsoleEnv>, deps: ApiDeps): void {
  app.get('/users', async (c) => {
    const page = pageParam(c.req.query('page'));
    const users = await deps.services.users.list({ page, pageSize: 50 });
    return c.html(<UsersList ctx={c.get('page')} users={users.items} total={users.total} page={page} />);
  });
  app.get('/users/:id', async (c) => {
    const ctx = c.get('page');
    const id = rowId(c.req.param('id'));
    const user = id ? await unlessNotFound(deps.services.users.get(id)) : undefined;
    if (!user) return c.text(notFoundText(ctx.lang, `user ${c.req.param('id')}`), 404);
    const tokens = await deps.services.users.listTokens(user.id, { page: 1, pageSize: 100 });
    return c.html(<UserDetail ctx={ctx} user={user} tokens={tokens.items} />);
  });
}
