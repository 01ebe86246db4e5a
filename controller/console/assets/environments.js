// The environments list: statuses and SSH commands updated in place every 2 s from
// GET /api/v1/environments (the page is never reloaded).
import { api } from './app.js';
import { poll, setSsh, setStatus } from './env-live.js';

const table = document.getElementById('environments');
if (table) {
  const labels = JSON.parse(table.dataset.statusLabels ?? '{}');
  poll(async () => {
    const data = await api('GET', '/api/v1/environments?page_size=100');
    for (const env of data.items) {
      const row = table.querySelector(`tr[data-env-id="${CSS.escape(env.env_id)}"]`);
      if (!row) continue;
      setStatus(row.querySelector('.status'), env.status, labels);
      setSsh(row.querySelector('.ssh'), env.access_info?.ssh ?? null);
    }
    // Rows of environments that are gone (deleted elsewhere) are marked as such.
    const ids = new Set(data.items.map((e) => e.env_id));
    if (data.pagination.total <= data.items.length) {
      for (const row of table.querySelectorAll('tr[data-env-id]')) if (!ids.has(row.dataset.envId)) setStatus(row.querySelector('.status'), 'deleted', labels);
    }
  });
}
