// Shared by the environment pages' scripts: a status badge updated in place, and a poller.

/** Sets a `.status` badge to `status` (class status-<status>, label from `labels`). */
export function setStatus(badge, status, labels) {
  if (!badge || badge.dataset.status === status) return false;
  badge.dataset.status = status;
  badge.className = `status status-${status}`;
  badge.textContent = labels[status] ?? status;
  return true;
}

/** Shows an SSH command in `code` (hiding the "pending" hint, showing the copy button), or hides it. */
export function setSsh(cell, ssh) {
  if (!cell) return;
  const code = cell.querySelector('.ssh-command');
  if (code && code.textContent !== (ssh ?? '')) code.textContent = ssh ?? '';
  const pending = cell.querySelector('.ssh-pending');
  if (pending) pending.hidden = Boolean(ssh);
  const copy = cell.querySelector('[data-copy]');
  if (copy) copy.hidden = !ssh;
}

/**
 * Calls `tick` every `ms` (after the previous call ended), while the page is shown; errors are
 * kept quiet (the next tick tries again). Returns a stop function.
 */
export function poll(tick, ms = 2000) {
  let timer;
  let stopped = false;
  const run = async () => {
    try {
      if (!document.hidden) await tick();
    } catch {
      // The next tick tries again (a restart of the controller, a dropped connection).
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  timer = setTimeout(run, ms);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
