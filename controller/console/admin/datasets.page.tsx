import type { Hono } from 'hono';
import type { ApiDeps } from '../../api/deps.js';
import type { DatasetRow } from '../../db/schema.js';
import { translator, type Texts } from '../i18n.js';
import type { PageContext } from '../layout.js';
import type { ConsoleEnv } from '../session.js';
import { AdminPage, ApiForm, CheckField, DataTable, Field, Pager, notFoundText, pageParam, rowId, when } from './components.js';
import { unlessNotFound } from '../reads.js';

const TEXT: Texts<
  | 'title' | 'datasetTitle' | 'name' | 'hostPath' | 'description' | 'scope' | 'public' | 'user' | 'workspace' | 'writable' | 'readOnly' | 'created'
  | 'add' | 'newDataset' | 'edit' | 'save' | 'delete' | 'deleteConfirm' | 'back' | 'actions' | 'hostPathHint' | 'ownerId' | 'workspaceId'
  | 'scopeHint' | 'writableHint' | 'editTitle' | 'mode' | 'readWrite'
> = {
  en: {
    title: 'Datasets', datasetTitle: 'Dataset {name}', name: 'Name', hostPath: 'Host path', description: 'Description', scope: 'Visible to',
    public: 'everyone', user: 'user #{id}', workspace: 'workspace #{id}', writable: 'Writable (may be mounted read-write)', readOnly: 'read-only',
    created: 'Created', add: 'Add dataset', newDataset: 'New dataset', edit: 'Edit', save: 'Save', delete: 'Delete',
    deleteConfirm: 'Delete dataset {name}? The data stays on the hosts; refused while an environment mounts it.', back: 'All datasets',
    actions: 'Actions', hostPathHint: 'A directory holding the data, the same path on every GPU host.', ownerId: 'Owner user ID',
    workspaceId: 'Workspace ID', scopeHint: 'Leave both empty for a dataset every user may mount.',
    writableHint: 'Turning it off remounts existing read-write mounts read-only (their environments are recreated, data kept).', editTitle: 'Change',
    mode: 'Mode', readWrite: 'read-write allowed',
  },
  zh: {
    title: '数据集', datasetTitle: '数据集 {name}', name: '名称', hostPath: '主机路径', description: '描述', scope: '可见范围',
    public: '所有人', user: '用户 #{id}', workspace: '工作空间 #{id}', writable: '可写（允许读写挂载）', readOnly: '只读',
    created: '创建时间', add: '添加数据集', newDataset: '新数据集', edit: '编辑', save: '保存', delete: '删除',
    deleteConfirm: '确定删除数据集 {name}？主机上的数据保留；有环境挂载时会被拒绝。', back: '全部数据集',
    actions: '操作', hostPathHint: '存放数据的目录，在每台 GPU 主机上路径相同。', ownerId: '所有者用户 ID',
    workspaceId: '工作空间 ID', scopeHint: '两项都留空：所有用户都可挂载。',
    writableHint: '关闭后，现有的读写挂载将改为只读（相关环境会重建，数据保留）。', editTitle: '修改',
    mode: '模式', readWrite: '允许读写',
  },
};

type T = ReturnType<typeof translator<keyof (typeof TEXT)['en']>>;

const scopeOf = (d: DatasetRow, t: T) =>
  d.workspace_id !== null ? t('workspace', { id: d.workspace_id }) : d.owner_id !== null ? t('user', { id: d.owner_id }) : t('public');

function DatasetsList(props: { ctx: PageContext; items: readonly DatasetRow[]; total: number; page: number }) {
  const { ctx } = props;
  const t = translator(TEXT, ctx.lang);
  return (
    <AdminPage ctx={ctx} title={t('title')}>
      <DataTable
        caption={t('title')}
        lang={ctx.lang}
        id="datasets"
        rows={props.items}
        columns={[
          { label: t('name'), cell: (d) => <a href={`/admin/datasets/${d.id}`}>{d.name}</a> },
          { label: t('hostPath'), cell: (d) => <code>{d.host_path}</code> },
          { label: t('scope'), cell: (d) => scopeOf(d, t) },
          { label: t('mode'), cell: (d) => (d.writable ? t('readWrite') : t('readOnly')) },
          { label: t('description'), cell: (d) => d.description },
          { label: t('created'), cell: (d) => when(d.created_at) },
          { label: t('actions'), cell: (d) => <a href={`/admin/datasets/${d.id}`}>{t('edit')}</a> },
        ]}
      />
      <Pager base="/admin/datasets" page={props.page} pageSize={50} total={props.total} lang={ctx.lang} />
      <section class="card">
        <h2>{t('newDataset')}</h2>
        <ApiForm method="POST" path="/api/v1/admin/datasets" submit={t('add')} id="create-dataset">
          <Field id="dataset-name" name="name" label={t('name')} lang={ctx.lang} required />
          <Field id="dataset-path" name="host_path" label={t('hostPath')} lang={ctx.lang} required hint={t('hostPathHint')} placeholder="/mnt/datasets/imagenet" />
          <Field id="dataset-description" name="description" label={t('description')} lang={ctx.lang} />
          <Field id="dataset-owner" name="owner_id" type="number" min={1} label={t('ownerId')} lang={ctx.lang} hint={t('scopeHint')} />
          <Field id="dataset-workspace" name="workspace_id" type="number" min={1} label={t('workspaceId')} lang={ctx.lang} />
          <CheckField id="dataset-writable" name="writable" label={t('writable')} />
        </ApiForm>
      </section>
    </AdminPage>
  );
}

function DatasetView(props: { ctx: PageContext; dataset: DatasetRow }) {
  const { ctx, dataset: d } = props;
  const t = translator(TEXT, ctx.lang);
  const path = `/api/v1/admin/datasets/${d.id}`;
  return (
    <AdminPage ctx={ctx} title={t('datasetTitle', { name: d.name })}>
      <p>
        <a href="/admin/datasets">← {t('back')}</a> · <code>{d.host_path}</code> · {scopeOf(d, t)} · {t('created')} {when(d.created_at)}
      </p>
      <section class="card">
        <h2>{t('editTitle')}</h2>
        <ApiForm method="PATCH" path={path} submit={t('save')} id="edit-dataset">
          <Field id="dataset-name" name="name" label={t('name')} lang={ctx.lang} value={d.name} />
          <Field id="dataset-description" name="description" label={t('description')} lang={ctx.lang} value={d.description} />
          <CheckField id="dataset-writable" name="writable" label={t('writable')} checked={d.writable} hint={t('writableHint')} />
        </ApiForm>
      </section>
      <ApiForm method="DELETE" path={path} submit={t('delete')} danger confirm={t('deleteConfirm', { name: d.name })} next="/admin/datasets" id="delete-dataset" />
    </AdminPage>
  );
}

/** GET /admin/datasets (list, add) and /admin/datasets/{id} (edit, delete). */
export function datasetPages(app: Hono<ConsoleEnv>, deps: ApiDeps): void {
  app.get('/datasets', async (c) => {
    const ctx = c.get('page');
    const page = pageParam(c.req.query('page'));
    const list = await deps.services.datasets.list(ctx.principal, { page, pageSize: 50 });
    return c.html(<DatasetsList ctx={ctx} items={list.items} total={list.total} page={page} />);
  });
  app.get('/datasets/:id', async (c) => {
    const ctx = c.get('page');
    const id = rowId(c.req.param('id'));
    const dataset = id ? await unlessNotFound(deps.services.datasets.get(ctx.principal, id)) : undefined;
    if (!dataset) return c.text(notFoundText(ctx.lang, `dataset ${c.req.param('id')}`), 404);
    return c.html(<DatasetView ctx={ctx} dataset={dataset} />);
  });
}
