// The admin pages' script (an ES module; app.js does the forms and copy buttons).
//   Hosts grid (#host-grid[data-refresh]): reloaded from its fragment URL every 3 s while the tab is
//   visible, and at once after a cordon / uncordon / drain / approve; focus stays on the same control.
//   Host detail: reloaded after such an action.
//   Token creation (#create-token): the new token is shown once in #new-token, with a copy button.

const REFRESH_MS = 3000;
let inFlight = false;

async function refreshGrid() {
  const grid = document.getElementById('host-grid');
  if (!grid || inFlight) return;
  inFlight = true;
  try {
    const res = await fetch(grid.dataset.refresh, { credentials: 'same-origin', headers: { accept: 'text/html' } });
    // Signed out or no longer an admin: leave the page as it is (the next navigation says why).
    if (!res.ok || res.redirected) return;
    const html = await res.text();
    const template = document.createElement('template');
    template.innerHTML = html.trim();
    const next = template.content.firstElementChild;
    if (!next || next.id !== 'host-grid' || next.innerHTML === grid.innerHTML) return;
    const focused = document.activeElement && grid.contains(document.activeElement) ? document.activeElement.closest('[id]')?.id : undefined;
    // A form showing an error keeps it: skip this round.
    if (grid.querySelector('[role=alert]:not([hidden])')) return;
    grid.replaceWith(next);
    if (focused) document.getElementById(focused)?.querySelector('button')?.focus();
  } catch {
    // The controller is away for a moment: try again next round.
  } finally {
    inFlight = false;
  }
}

if (document.getElementById('host-grid')) {
  setInterval(() => {
    if (document.visibilityState === 'visible') refreshGrid();
  }, REFRESH_MS);
}

document.addEventListener('api:done', (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  if (form.closest('.host-actions')) {
    if (document.getElementById('host-grid')) refreshGrid();
    else window.location.reload();
    return;
  }
  if (form.id === 'create-token') {
    const box = document.getElementById('new-token');
    const input = document.getElementById('new-token-value');
    if (!box || !input) return;
    input.value = event.detail?.token ?? '';
    box.hidden = false;
    input.focus();
    input.select();
    form.reset();
  }
});
