import type { SshKey } from '../../users/ssh-keys.service.js';
import { translator, type Texts } from '../i18n.js';
import { Page, type PageContext } from '../layout.js';
import { when } from './env-common.js';

const TEXT: Texts<'title' | 'name' | 'fingerprint' | 'added' | 'delete' | 'confirmDelete' | 'empty' | 'add' | 'publicKey' | 'keyHint' | 'nameHint' | 'list' | 'more'> = {
  en: {
    title: 'SSH keys', name: 'Name', fingerprint: 'Fingerprint', added: 'Added', delete: 'Delete', confirmDelete: 'Delete this SSH key? Environments started from now on no longer accept it.',
    empty: 'No SSH keys yet: add one to log in to your environments over SSH.', add: 'Add key', publicKey: 'Public key',
    keyHint: 'One OpenSSH public key line, e.g. the contents of ~/.ssh/id_ed25519.pub.', nameHint: "Optional: defaults to the key's comment.",
    list: 'Your keys', more: 'Showing the first {shown} of {total}.',
  },
  zh: {
    title: 'SSH 公钥', name: '名称', fingerprint: '指纹', added: '添加时间', delete: '删除', confirmDelete: '删除这个 SSH 公钥？之后启动的环境将不再接受它。',
    empty: '还没有 SSH 公钥：添加一个即可通过 SSH 登录你的环境。', add: '添加公钥', publicKey: '公钥',
    keyHint: '一行 OpenSSH 公钥，例如 ~/.ssh/id_ed25519.pub 的内容。', nameHint: '可选：默认为公钥的注释。',
    list: '你的公钥', more: '显示前 {shown} 个，共 {total} 个。',
  },
};

/** GET /ssh-keys: the caller's keys (delete with confirmation) and the add form (POST /api/v1/ssh-keys). */
export function SshKeys(props: { ctx: PageContext; keys: readonly SshKey[]; total: number }) {
  const { ctx, keys } = props;
  const t = translator(TEXT, ctx.lang);
  return (
    <Page ctx={ctx} title={t('title')}>
      <section class="card" aria-labelledby="keys-h">
        <h2 id="keys-h">{t('list')}</h2>
        {keys.length === 0 ? (
          <p id="no-keys">{t('empty')}</p>
        ) : (
          <div class="table-wrap">
            <table id="ssh-keys">
              <thead>
                <tr><th scope="col">{t('name')}</th><th scope="col">{t('fingerprint')}</th><th scope="col">{t('added')}</th><th scope="col"><span class="sr-only">{t('delete')}</span></th></tr>
              </thead>
              <tbody>
                {keys.map((k) => (
                  <tr data-key-id={String(k.id)}>
                    <td>{k.name}</td>
                    <td><code>{k.fingerprint}</code></td>
                    <td>{when(k.created_at)}</td>
                    <td>
                      <form data-api-method="DELETE" data-api-path={`/api/v1/ssh-keys/${k.id}`} data-confirm={t('confirmDelete')}>
                        <button type="submit" class="danger" aria-label={`${t('delete')}: ${k.name}`}>{t('delete')}</button>
                        <span role="alert" hidden></span>
                      </form>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {props.total > keys.length ? <p class="hint">{t('more', { shown: keys.length, total: props.total })}</p> : null}
      </section>
      <form id="add-key" class="card" data-api-method="POST" data-api-path="/api/v1/ssh-keys" aria-labelledby="add-h">
        <h2 id="add-h">{t('add')}</h2>
        <label for="key-name">{t('name')}</label>
        <input id="key-name" name="name" maxlength={64} autocomplete="off" aria-describedby="key-name-hint" />
        <p id="key-name-hint" class="hint">{t('nameHint')}</p>
        <label for="key-public">{t('publicKey')}</label>
        <textarea id="key-public" name="public_key" rows={4} required spellcheck={false} aria-describedby="key-public-hint"></textarea>
        <p id="key-public-hint" class="hint">{t('keyHint')}</p>
        <p role="alert" hidden></p>
        <button type="submit">{t('add')}</button>
      </form>
    </Page>
  );
}
