// An environment's page: status, reason, access info and the allowed actions updated in place
// every 2 s (GET /api/v1/environments/{id}), status changes appended to the timeline, and the
// live logs followed with an EventSource (GET .../logs?follow=true, server-sent events).
import { api } from './app.js';
import { poll, setSsh, setStatus } from './env-live.js';
import { LogOverlap } from './log-overlap.js';

const root = document.getElementById('environment');
if (root) {
  const id = root.dataset.envId;
  const labels = JSON.parse(root.dataset.statusLabels ?? '{}');
  const allowed = JSON.parse(root.dataset.allowed ?? '{}');
  const badge = document.getElementById('env-status');

  const refresh = (env) => {
    if (setStatus(badge, env.status, labels)) addToTimeline(root.dataset.statusNow.replace('{status}', labels[env.status] ?? env.status));
    const reason = document.getElementById('env-reason');
    if (reason.textContent !== env.status_reason) reason.textContent = env.status_reason;
    setSsh(document.querySelector('#environment .ssh'), env.access_info?.ssh ?? null);
    setHostKeys(env.access_info?.ssh_host_keys ?? []);
    const jupyter = env.access_info?.jupyter ?? null;
    document.getElementById('jupyter').hidden = !jupyter;
    const link = document.getElementById('jupyter-url');
    if (jupyter && link.textContent !== jupyter) {
      link.textContent = jupyter;
      link.href = jupyter;
    }
    for (const form of root.querySelectorAll('form[data-action]')) {
      form.querySelector('[type=submit]').disabled = !(allowed[form.dataset.action] ?? []).includes(env.status);
    }
    root.dispatchEvent(new CustomEvent('env:status', { detail: env }));
  };

  poll(async () => {
    try {
      refresh(await api('GET', `/api/v1/environments/${encodeURIComponent(id)}`));
    } catch (err) {
      if (err.status === 404) setStatus(badge, 'deleted', labels);
      throw err;
    }
  });
  followLogs(id);
}

function addToTimeline(text) {
  const list = document.getElementById('timeline');
  if (!list) return;
  document.getElementById('no-events')?.remove();
  const item = document.createElement('li');
  const time = document.createElement('time');
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = `${now.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  item.append(time, ` ${text}`);
  list.append(item);
}

/** Follows the logs: each event is one line; `end` (the platform ended the follow) is shown and closes it. */
function followLogs(id) {
  const pre = document.getElementById('logs');
  if (!pre || typeof EventSource === 'undefined') return;
  const source = new EventSource(`/api/v1/environments/${encodeURIComponent(id)}/logs?follow=true&lines=200`);
  const append = (line) => {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(`${line}\n`);
    // Keep the view bounded (the last 2,000 lines).
    while (pre.childNodes.length > 2000) pre.firstChild.remove();
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  // After a dropped connection EventSource reconnects by itself, and the follow starts again with
  // the last 200 lines: those already shown are skipped by position (log-overlap.js).
  const overlap = new LogOverlap(200);
  source.onerror = () => overlap.reconnected();
  source.onmessage = (event) => {
    for (const line of overlap.accept(event.data)) append(line);
  };
  source.addEventListener('end', (event) => {
    append(`(${pre.dataset.ended}: ${event.data})`);
    source.close();
  });
  window.addEventListener('pagehide', () => source.close());
}

/** Lists the SSH host key fingerprints (`type SHA256:…`), or the hint while there are none. */
function setHostKeys(keys) {
  const list = document.getElementById('host-keys');
  if (!list) return;
  const lines = keys.map((k) => `${k.type} ${k.fingerprint}`);
  document.getElementById('host-keys-pending').hidden = lines.length > 0;
  if ([...list.children].map((li) => li.textContent).join('\n') === lines.join('\n')) return;
  list.replaceChildren(
    ...lines.map((line) => {
      const li = document.createElement('li');
      const code = document.createElement('code');
      code.textContent = line;
      li.append(code);
      return li;
    }),
  );
}
