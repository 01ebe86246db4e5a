import type { Hono } from 'hono';
import type { ApiDeps } from '../../api/deps.js';
import type { UserRow } from '../../db/schema.js';
import type { Workspace, WorkspaceDetail } from '../../users/workspaces.service.js';
import { translator, type Texts } from '../i18n.js';
import type { PageContext } from '../layout.js';
import type { ConsoleEnv } from '../session.js';
import { AdminPage, Action, ApiForm, DataTable, Field, Pager, SelectField, notFoundText, pageParam, rowId, when } from './components.js';
import { unlessNotFound } from '../reads.js';

const TEXT: Texts<
  | 'title' | 'wsTitle' | 'name' | 'owner' | 'members' | 'created' | 'create' | 'newWorkspace' | 'member' | 'role' | 'ownerRole' | 'memberRole'
  | 'added' | 'remove' | 'removeConfirm' | 'add' | 'addMember' | 'user' | 'delete' | 'deleteConfirm' | 'back' | 'actions' | 'usersHint'
> = {
  en: {
    title: 'Workspaces', wsTitle: 'Workspace {name}', name: 'Name', owner: 'Owner', members: 'Members', created: 'Created', create: 'Create workspace',
    newWorkspace: 'New workspace', member: 'Member', role: 'Role', ownerRole: 'owner', memberRole: 'member', added: 'Added', remove: 'Remove',
    removeConfirm: 'Remove {name} from this workspace? Their environments in it are handed over to the owner.', add: 'Add member',
    addMember: 'Add a member', user: 'User', delete: 'Delete workspace', deleteConfirm: 'Delete workspace {name}? Its datasets are deleted with it.',
    back: 'All workspaces', actions: 'Actions', usersHint: 'The first {n} users are listed.',
  },
  zh: {
    title: '工作空间', wsTitle: '工作空间 {name}', name: '名称', owner: '所有者', members: '成员', created: '创建时间', create: '创建工作空间',
    newWorkspace: '新工作空间', member: '成员', role: '角色', ownerRole: '所有者', memberRole: '成员', added: '加入时间', remove: '移除',
    removeConfirm: '确定将 {name} 移出该工作空间？其在此空间的环境将移交给所有者。', add: '添加成员',
    addMember: '添加成员', user: '用户', delete: '删除工作空间', deleteConfirm: '确定删除工作空间 {name}？其数据集将一并删除。',
    back: '全部工作空间', actions: '操作', usersHint: '列出前 {n} 个用户。',
  },
};

/** Users offered in the owner and member selects (the first ones by id). */
const USER_CHOICES = 200;

const userOptions = (users: readonly UserRow[]) => users.filter((u) => !u.disabled_at).map((u) => ({ value: u.id, label: `${u.name} (#${u.id})` }));

function WorkspacesList(props: { ctx: PageContext; items: readonly Workspace[]; total: number; page: number; users: readonly UserRow[] }) {
  const { ctx } = props;
  const t = translator(TEXT, ctx.lang);
  const names = new Map(props.users.map((u) => [u.id, u.name]));
  return (
    <AdminPage ctx={ctx} title={t('title')}>
      <DataTable
        caption={t('title')}
        lang={ctx.lang}
        id="workspaces"
        rows={props.items}
        columns={[
          { label: 'ID', cell: (w) => w.id },
          { label: t('name'), cell: (w) => <a href={`/admin/workspaces/${w.id}`}>{w.name}</a> },
          { label: t('owner'), cell: (w) => names.get(w.owner_id) ?? `#${w.owner_id}` },
          { label: t('members'), cell: (w) => w.member_count },
          { label: t('created'), cell: (w) => when(w.created_at) },
        ]}
      />
      <Pager base="/admin/workspaces" page={props.page} pageSize={50} total={props.total} lang={ctx.lang} />
      <section class="card">
        <h2>{t('newWorkspace')}</h2>
        <ApiForm method="POST" path="/api/v1/admin/workspaces" submit={t('create')} next="/admin/workspaces/{id}" id="create-workspace">
          <Field id="ws-name" name="name" label={t('name')} lang={ctx.lang} required />
          <SelectField id="ws-owner" name="owner_id" label={t('owner')} required number options={userOptions(props.users)} />
          <p class="hint">{t('usersHint', { n: USER_CHOICES })}</p>
        </ApiForm>
      </section>
    </AdminPage>
  );
}

function WorkspaceView(props: { ctx: PageContext; ws: WorkspaceDetail; users: readonly UserRow[] }) {
  const { ctx, ws } = props;
  const t = translator(TEXT, ctx.lang);
  const base = `/api/v1/admin/workspaces/${ws.id}`;
  const memberIds = new Set(ws.members.map((m) => m.user_id));
  return (
    <AdminPage ctx={ctx} title={t('wsTitle', { name: ws.name })}>
      <p><a href="/admin/workspaces">← {t('back')}</a></p>
      <section class="card">
        <h2>{t('members')}</h2>
        <DataTable
          caption={t('members')}
          lang={ctx.lang}
          id="members"
          rows={ws.members}
          columns={[
            { label: t('member'), cell: (m) => <a href={`/admin/users/${m.user_id}`}>{m.name}</a> },
            { label: t('role'), cell: (m) => t(m.role === 'owner' ? 'ownerRole' : 'memberRole') },
            { label: t('added'), cell: (m) => when(m.created_at) },
            {
              label: t('actions'),
              cell: (m) =>
                m.role === 'owner' ? null : (
                  <Action method="DELETE" path={`${base}/members/${m.user_id}`} label={t('remove')} danger confirm={t('removeConfirm', { name: m.name })} id={`remove-${m.user_id}`} />
                ),
            },
          ]}
        />
        <h3>{t('addMember')}</h3>
        <ApiForm method="POST" path={`${base}/members`} submit={t('add')} id="add-member">
          <SelectField id="member-user" name="user_id" label={t('user')} required number options={userOptions(props.users.filter((u) => !memberIds.has(u.id)))} />
        </ApiForm>
      </section>
      <ApiForm method="DELETE" path={base} submit={t('delete')} danger confirm={t('deleteConfirm', { name: ws.name })} next="/admin/workspaces" id="delete-workspace" />
    </AdminPage>
  );
}

/** GET /admin/workspaces (list, create) and /admin/workspaces/{id} (members add/remove, delete). */
export function workspacePages(app: Hono<ConsoleEnv>, deps: ApiDeps): void {
  const users = async () => (await deps.services.users.list({ page: 1, pageSize: USER_CHOICES })).items;
  app.get('/workspaces', async (c) => {
    const page = pageParam(c.req.query('page'));
    const list = await deps.services.workspaces.list({ page, pageSize: 50 });
    return c.html(<WorkspacesList ctx={c.get('page')} items={list.items} total={list.total} page={page} users={await users()} />);
  });
  app.get('/workspaces/:id', async (c) => {
    const ctx = c.get('page');
    const id = rowId(c.req.param('id'));
    const ws = id ? await unlessNotFound(deps.services.workspaces.get(id)) : undefined;
    if (!ws) return c.text(notFoundText(ctx.lang, `workspace ${c.req.param('id')}`), 404);
    return c.html(<WorkspaceView ctx={ctx} ws={ws} users={await users()} />);
  });
}
