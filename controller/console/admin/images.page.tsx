import type { Hono } from 'hono';
import type { ApiDeps } from '../../api/deps.js';
import type { ImageRow } from '../../db/schema.js';
import { translator, type Lang, type Texts } from '../i18n.js';
import type { PageContext } from '../layout.js';
import type { ConsoleEnv } from '../session.js';
import { AdminPage, ApiForm, DataTable, Field, Pager, notFoundText, pageParam, rowId, when } from './components.js';
import { unlessNotFound } from '../reads.js';

const TEXT: Texts<
  | 'title' | 'imageTitle' | 'name' | 'ref' | 'description' | 'ssh' | 'jupyter' | 'dataPath' | 'created' | 'add' | 'newImage' | 'edit' | 'save'
  | 'delete' | 'deleteConfirm' | 'back' | 'actions' | 'refHint' | 'jupyterHint' | 'dataPathHint' | 'editTitle'
> = {
  en: {
    title: 'Images', imageTitle: 'Image {name}', name: 'Name', ref: 'Docker reference', description: 'Description', ssh: 'SSH port',
    jupyter: 'Jupyter port', dataPath: 'Data path', created: 'Created', add: 'Add image', newImage: 'New image', edit: 'Edit', save: 'Save',
    delete: 'Remove from catalog', deleteConfirm: 'Remove image {name} from the catalog? Refused while an environment uses it.',
    back: 'All images', actions: 'Actions', refHint: 'e.g. registry.example.com/ml/pytorch:2.0-cuda12', jupyterHint: 'Empty: 8888 on create, unchanged on edit.',
    dataPathHint: 'Where the environment storage is mounted in the container (default /root/workspace).', editTitle: 'Change',
  },
  zh: {
    title: '镜像', imageTitle: '镜像 {name}', name: '名称', ref: 'Docker 引用', description: '描述', ssh: 'SSH 端口',
    jupyter: 'Jupyter 端口', dataPath: '数据目录', created: '创建时间', add: '添加镜像', newImage: '新镜像', edit: '编辑', save: '保存',
    delete: '从目录移除', deleteConfirm: '确定将镜像 {name} 从目录移除？有环境使用时会被拒绝。',
    back: '全部镜像', actions: '操作', refHint: '例如 registry.example.com/ml/pytorch:2.0-cuda12', jupyterHint: '留空：创建时为 8888，编辑时不变。',
    dataPathHint: '环境存储在容器内的挂载目录（默认 /root/workspace）。', editTitle: '修改',
  },
};

/** The fields of an image, empty for a new one; `required` on create only (a PATCH sends what is filled in). */
function ImageFields(props: { image?: ImageRow; lang: Lang }) {
  const t = translator(TEXT, props.lang);
  const i = props.image;
  const create = !i;
  return (
    <>
      <Field id="image-name" name="name" label={t('name')} lang={props.lang} required={create} value={i?.name} />
      <Field id="image-ref" name="docker_ref" label={t('ref')} lang={props.lang} required={create} value={i?.docker_ref} hint={t('refHint')} />
      <Field id="image-description" name="description" label={t('description')} lang={props.lang} value={i?.description} />
      <Field id="image-ssh" name="ssh_port" type="number" min={1} max={65535} label={t('ssh')} lang={props.lang} value={i?.ssh_port} />
      <Field id="image-jupyter" name="jupyter_port" type="number" min={1} max={65535} label={t('jupyter')} lang={props.lang} value={i?.jupyter_port} hint={t('jupyterHint')} />
      <Field id="image-data-path" name="data_path" label={t('dataPath')} lang={props.lang} value={i?.data_path} hint={t('dataPathHint')} />
    </>
  );
}

function ImagesList(props: { ctx: PageContext; items: readonly ImageRow[]; total: number; page: number }) {
  const { ctx } = props;
  const t = translator(TEXT, ctx.lang);
  return (
    <AdminPage ctx={ctx} title={t('title')}>
      <DataTable
        caption={t('title')}
        lang={ctx.lang}
        id="images"
        rows={props.items}
        columns={[
          { label: t('name'), cell: (i) => <a href={`/admin/images/${i.id}`}>{i.name}</a> },
          { label: t('ref'), cell: (i) => <code>{i.docker_ref}</code> },
          { label: t('ssh'), cell: (i) => i.ssh_port },
          { label: t('jupyter'), cell: (i) => i.jupyter_port ?? '—' },
          { label: t('dataPath'), cell: (i) => <code>{i.data_path}</code> },
          { label: t('description'), cell: (i) => i.description },
          { label: t('actions'), cell: (i) => <a href={`/admin/images/${i.id}`}>{t('edit')}</a> },
        ]}
      />
      <Pager base="/admin/images" page={props.page} pageSize={50} total={props.total} lang={ctx.lang} />
      <section class="card">
        <h2>{t('newImage')}</h2>
        <ApiForm method="POST" path="/api/v1/admin/images" submit={t('add')} id="create-image">
          <ImageFields lang={ctx.lang} />
        </ApiForm>
      </section>
    </AdminPage>
  );
}

function ImageView(props: { ctx: PageContext; image: ImageRow }) {
  const { ctx, image } = props;
  const t = translator(TEXT, ctx.lang);
  const path = `/api/v1/admin/images/${image.id}`;
  return (
    <AdminPage ctx={ctx} title={t('imageTitle', { name: image.name })}>
      <p><a href="/admin/images">← {t('back')}</a> · {t('created')} {when(image.created_at)}</p>
      <section class="card">
        <h2>{t('editTitle')}</h2>
        <ApiForm method="PATCH" path={path} submit={t('save')} id="edit-image">
          <ImageFields image={image} lang={ctx.lang} />
        </ApiForm>
      </section>
      <ApiForm method="DELETE" path={path} submit={t('delete')} danger confirm={t('deleteConfirm', { name: image.name })} next="/admin/images" id="delete-image" />
    </AdminPage>
  );
}

/** GET /admin/images (list, add) and /admin/images/{id} (edit, remove). */
export function imagePages(app: Hono<ConsoleEnv>, deps: ApiDeps): void {
  app.get('/images', async (c) => {
    const page = pageParam(c.req.query('page'));
    const list = await deps.services.images.list({ page, pageSize: 50 });
    return c.html(<ImagesList ctx={c.get('page')} items={list.items} total={list.total} page={page} />);
  });
  app.get('/images/:id', async (c) => {
    const ctx = c.get('page');
    const id = rowId(c.req.param('id'));
    const image = id ? await unlessNotFound(deps.services.images.get(id)) : undefined;
    if (!image) return c.text(notFoundText(ctx.lang, `image ${c.req.param('id')}`), 404);
    return c.html(<ImageView ctx={ctx} image={image} />);
  });
}
