// The console's shared client script (an ES module, loaded by every page).
//   api(method, path, body): calls the REST API with the session cookie and the CSRF header;
//     resolves to the envelope's `data`, rejects with an Error carrying the envelope's code and message.
//   <form data-api-method="POST" data-api-path="/api/v1/..." [data-confirm="..."] [data-next="/..."]>:
//     submits its fields as JSON through api() (inputs with data-type="number" become numbers,
//     empty optional fields are left out), shows an error in the form's [role=alert] element, then
//     goes to data-next (`{id}` filled from the answer's data.id) or reloads.
//   <button data-copy="#id">: copies the text (or value) of the element `#id`.

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';
}

export async function api(method, path, body) {
  const headers = { 'x-csrf-token': csrfToken(), accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 204) return undefined; // DELETE: no body, no envelope
  const envelope = await res.json().catch(() => ({ code: res.status, message: `HTTP ${res.status}` }));
  if (!res.ok || envelope.code !== 0) {
    const err = new Error(envelope.message ?? `HTTP ${res.status}`);
    err.code = envelope.code;
    err.status = res.status;
    throw err;
  }
  return envelope.data;
}

export function formBody(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled || el.name === '_csrf' || (el.type === 'checkbox' && !el.checked && !el.dataset.type)) continue;
    if (el.type === 'checkbox' && el.dataset.type === 'boolean') body[el.name] = el.checked;
    else if (el.value === '' && !el.required) continue;
    else if (el.dataset.type === 'number') body[el.name] = Number(el.value);
    else body[el.name] = el.value;
  }
  return body;
}

export function showError(container, err) {
  const alert = container.querySelector('[role=alert]');
  const text = err.code ? `${err.message} (${err.code})` : err.message;
  if (alert) {
    alert.textContent = text;
    alert.hidden = false;
  } else {
    window.alert(text);
  }
}

document.addEventListener('submit', async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.apiPath) return;
  event.preventDefault();
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
  const button = form.querySelector('[type=submit]');
  if (button) button.disabled = true;
  try {
    const method = form.dataset.apiMethod ?? 'POST';
    const data = await api(method, form.dataset.apiPath, method === 'DELETE' || form.dataset.noBody !== undefined ? undefined : formBody(form));
    form.dispatchEvent(new CustomEvent('api:done', { detail: data, bubbles: true }));
    if (form.dataset.stay !== undefined) return;
    if (form.dataset.next) window.location.assign(form.dataset.next.replace('{id}', data?.id ?? ''));
    else window.location.reload();
  } catch (err) {
    showError(form, err);
  } finally {
    if (button) button.disabled = false;
  }
});

document.addEventListener('click', async (event) => {
  const button = event.target instanceof Element ? event.target.closest('[data-copy]') : null;
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  const text = source ? ('value' in source ? source.value : source.textContent) : '';
  await navigator.clipboard?.writeText(text ?? '').catch(() => undefined);
  button.dataset.copied = 'true';
  setTimeout(() => delete button.dataset.copied, 1500);
});
