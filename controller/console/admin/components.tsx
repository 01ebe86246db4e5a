import type { Child } from 'hono/jsx';
import { translator, type Lang, type Texts } from '../i18n.js';
import { Page, type PageContext } from '../layout.js';

// The admin pages' small building blocks: a table, a form that calls the REST API (app.js submits
// it as JSON and shows the API's message), labelled fields, one-button actions and a pager.

const TEXT: Texts<'previous' | 'next' | 'pageOf' | 'none' | 'pages' | 'optional'> = {
  en: { previous: 'Previous', next: 'Next', pageOf: 'Page {page} of {pages}', none: 'Nothing here yet.', pages: 'Pages', optional: 'optional' },
  zh: { previous: '上一页', next: '下一页', pageOf: '第 {page} / {pages} 页', none: '暂无数据。', pages: '分页', optional: '可选' },
};

/** A signed-in page with the admin pages' stylesheet and script. */
export function AdminPage(props: { ctx: PageContext; title: string; children: Child }) {
  return (
    <Page ctx={props.ctx} title={props.title}>
      <link rel="stylesheet" href="/assets/console/admin.css" />
      <script type="module" src="/assets/console/admin.js"></script>
      {props.children}
    </Page>
  );
}

export interface Column<T> {
  readonly label: string;
  readonly cell: (row: T) => Child;
}

/** A table of `rows` with a caption; a line saying there is nothing when `rows` is empty. */
export function DataTable<T>(props: { caption: string; columns: readonly Column<T>[]; rows: readonly T[]; lang: Lang; id?: string }) {
  const t = translator(TEXT, props.lang);
  if (props.rows.length === 0) return <p class="hint" id={props.id}>{t('none')}</p>;
  return (
    <div class="table-wrap">
      <table id={props.id}>
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>{props.columns.map((c) => <th scope="col">{c.label}</th>)}</tr>
        </thead>
        <tbody>
          {props.rows.map((row) => (
            <tr>{props.columns.map((c) => <td data-label={c.label}>{c.cell(row)}</td>)}</tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/**
 * A form submitted by app.js to the REST API as JSON (`method` `path`), with the API's error shown
 * in its alert. `next`: the page to go to after (`{id}` from the answer); `stay`: no navigation;
 * otherwise the page reloads.
 */
export function ApiForm(props: {
  method: 'POST' | 'PATCH' | 'DELETE';
  path: string;
  submit: string;
  children?: Child;
  confirm?: string | undefined;
  next?: string;
  stay?: boolean;
  noBody?: boolean;
  danger?: boolean;
  secondary?: boolean;
  inline?: boolean;
  id?: string;
  title?: string;
}) {
  const buttonClass = props.danger ? 'danger' : props.secondary ? 'secondary' : undefined;
  return (
    <form
      id={props.id}
      class={props.inline ? 'inline-action' : 'api-form'}
      data-api-method={props.method}
      data-api-path={props.path}
      data-confirm={props.confirm}
      data-next={props.next}
      data-stay={props.stay ? '' : undefined}
      data-no-body={props.noBody ? '' : undefined}
    >
      {props.children}
      <button type="submit" class={buttonClass} title={props.title}>{props.submit}</button>
      <p role="alert" hidden></p>
    </form>
  );
}

/** A one-button form (no body): cordon, enable, revoke... */
export function Action(props: { method: 'POST' | 'DELETE'; path: string; label: string; confirm?: string | undefined; danger?: boolean; id?: string; stay?: boolean; title?: string }) {
  return (
    <ApiForm
      method={props.method}
      path={props.path}
      submit={props.label}
      confirm={props.confirm}
      danger={props.danger ?? false}
      secondary={!props.danger}
      noBody
      inline
      stay={props.stay ?? false}
      {...(props.id ? { id: props.id } : {})}
      {...(props.title ? { title: props.title } : {})}
    />
  );
}

interface FieldProps {
  id: string;
  name: string;
  label: string;
  lang: Lang;
  type?: 'text' | 'number' | 'email';
  required?: boolean;
  value?: string | number | null;
  hint?: string;
  min?: number;
  max?: number;
  placeholder?: string;
}

/** A labelled input; numbers are sent as JSON numbers; a hint is tied to it with aria-describedby. */
export function Field(props: FieldProps) {
  const t = translator(TEXT, props.lang);
  const hintId = props.hint ? `${props.id}-hint` : undefined;
  return (
    <div class="field">
      <label for={props.id}>
        {props.label}
        {props.required ? null : <span class="hint"> ({t('optional')})</span>}
      </label>
      <input
        id={props.id}
        name={props.name}
        type={props.type ?? 'text'}
        required={props.required ?? false}
        value={props.value ?? undefined}
        min={props.min}
        max={props.max}
        placeholder={props.placeholder}
        data-type={props.type === 'number' ? 'number' : undefined}
        aria-describedby={hintId}
      />
      {props.hint ? <p class="hint" id={hintId}>{props.hint}</p> : null}
    </div>
  );
}

/** A labelled select; `number` sends the value as a JSON number; an empty first option when not required. */
export function SelectField(props: {
  id: string;
  name: string;
  label: string;
  options: readonly { value: string | number; label: string }[];
  value?: string | number | null;
  required?: boolean;
  number?: boolean;
  emptyLabel?: string;
}) {
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      <select id={props.id} name={props.name} required={props.required ?? false} data-type={props.number ? 'number' : undefined}>
        {props.required ? null : <option value="">{props.emptyLabel ?? '—'}</option>}
        {props.options.map((o) => (
          <option value={String(o.value)} selected={props.value !== undefined && props.value !== null && String(props.value) === String(o.value)}>
            {o.label}
          </option>
        ))}
      </select>
    </div>
  );
}

/** A labelled checkbox sent as a JSON boolean. */
export function CheckField(props: { id: string; name: string; label: string; checked?: boolean; hint?: string }) {
  const hintId = props.hint ? `${props.id}-hint` : undefined;
  return (
    <div class="field check">
      <input id={props.id} name={props.name} type="checkbox" data-type="boolean" checked={props.checked ?? false} aria-describedby={hintId} />
      <label for={props.id}>{props.label}</label>
      {props.hint ? <p class="hint" id={hintId}>{props.hint}</p> : null}
    </div>
  );
}

/** Previous / next links for a paged list at `base` (`?page=N`). Nothing when everything fits one page. */
export function Pager(props: { base: string; page: number; pageSize: number; total: number; lang: Lang }) {
  const t = translator(TEXT, props.lang);
  const pages = Math.max(1, Math.ceil(props.total / props.pageSize));
  if (pages <= 1) return null;
  const link = (page: number) => `${props.base}?page=${page}`;
  return (
    <nav class="pager" aria-label={t('pages')}>
      {props.page > 1 ? <a href={link(props.page - 1)} rel="prev">{t('previous')}</a> : null}
      <span>{t('pageOf', { page: props.page, pages })}</span>
      {props.page < pages ? <a href={link(props.page + 1)} rel="next">{t('next')}</a> : null}
    </nav>
  );
}

/** The page number of `?page=` (1 when absent or not a positive integer). */
export function pageParam(value: string | undefined): number {
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 && n <= 1_000_000 ? n : 1;
}

/** A date as the console shows it: UTC, to the minute. */
export function when(date: Date | null | undefined): string {
  return date ? `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC` : '—';
}

/** Labels and their values as a description list. */
export function Facts(props: { items: readonly [string, Child][] }) {
  return (
    <dl class="facts">
      {props.items.map(([label, value]) => (
        <div>
          <dt>{label}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

/** The 404 page of an admin page whose subject does not exist. */
export function notFoundText(lang: Lang, what: string): string {
  return lang === 'zh' ? `404：${what} 不存在` : `404 Not Found: ${what}`;
}

/** A row id from a path parameter (a positive 32-bit integer), or undefined. */
export function rowId(param: string): number | undefined {
  const n = Number(param);
  return /^[0-9]+$/.test(param) && n > 0 && n < 2 ** 31 ? n : undefined;
}
