/**
 * Success messages. Chinese by default, as in the seed API page; English when the request's
 * Accept-Language prefers English. Error messages are English: they name fields and values and
 * say what to do, and stay stable for scripts.
 */
const MESSAGES = {
  success: { zh: 'success', en: 'success' },
  created: { zh: '创建成功', en: 'created' },
  updated: { zh: '更新成功', en: 'updated' },
  deleted: { zh: '删除成功', en: 'deleted' },
  env_created: { zh: '环境创建成功', en: 'Environment created' },
  env_queued: { zh: '环境已排队等待资源', en: 'Environment queued until capacity frees' },
  env_starting: { zh: '环境启动中', en: 'Environment starting' },
  env_stopping: { zh: '环境停止中', en: 'Environment stopping' },
  env_restarting: { zh: '环境重启中', en: 'Environment restarting' },
  env_deleted: { zh: '环境删除成功', en: 'Environment deleted' },
  dataset_mounted: { zh: '数据集挂载成功', en: 'Dataset mounted' },
  dataset_unmounted: { zh: '数据集卸载成功', en: 'Dataset unmounted' },
  host_cordoned: { zh: '主机已停止调度', en: 'Host cordoned' },
  host_uncordoned: { zh: '主机已恢复调度', en: 'Host uncordoned' },
  host_draining: { zh: '主机排空中', en: 'Host draining' },
  host_approved: { zh: '主机已批准', en: 'Host approved' },
  host_revoked: { zh: '主机已吊销', en: 'Host revoked' },
  join_token_created: { zh: '加入令牌创建成功，请立即保存：它只显示这一次', en: 'Join token created; save it now: it is shown only once' },
  user_created: { zh: '用户创建成功', en: 'User created' },
  token_created: { zh: '令牌创建成功，请立即保存：它只显示这一次', en: 'Token created; save it now: it is shown only once' },
  workspace_created: { zh: '工作空间创建成功', en: 'Workspace created' },
  member_added: { zh: '成员添加成功', en: 'Member added' },
  image_created: { zh: '镜像添加成功', en: 'Image added' },
  image_updated: { zh: '镜像更新成功', en: 'Image updated' },
  dataset_created: { zh: '数据集创建成功', en: 'Dataset created' },
  dataset_updated: { zh: '数据集更新成功', en: 'Dataset updated' },
  ssh_key_added: { zh: 'SSH 公钥添加成功', en: 'SSH key added' },
} as const;

export type MessageKey = keyof typeof MESSAGES;

/** The message for `key` in the language the Accept-Language header prefers (zh by default). */
export function translate(key: MessageKey, acceptLanguage: string | undefined): string {
  return prefersEnglish(acceptLanguage) ? MESSAGES[key].en : MESSAGES[key].zh;
}

export function prefersEnglish(header: string | undefined): boolean {
  if (!header) return false;
  let best = { lang: '', q: -1 };
  for (const part of header.split(',')) {
    const [tag = '', ...params] = part.trim().toLowerCase().split(';');
    const qParam = params.find((p) => p.trim().startsWith('q='));
    const q = qParam ? Number(qParam.trim().slice(2)) : 1;
    if (Number.isFinite(q) && q > best.q && (tag.startsWith('en') || tag.startsWith('zh'))) best = { lang: tag, q };
  }
  return best.lang.startsWith('en');
}
