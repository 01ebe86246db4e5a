// The create form: sizes entered in GiB are sent as bytes; POST /api/v1/environments; on success
// the browser goes to the new environment's page, on an error (e.g. 40902 no capacity) the
// envelope's message shows in the form's alert.
import { api, showError } from './app.js';

const GiB = 2 ** 30;
const form = document.getElementById('create-environment');

function body() {
  const value = (name) => form.elements.namedItem(name).value.trim();
  const out = {
    name: value('name'),
    image: value('image'),
    cpu: Number(value('cpu')),
    memory: Math.round(Number(value('memory')) * GiB),
    storage: Math.round(Number(value('storage')) * GiB),
    gpu: Number(value('gpu')),
  };
  if (value('description')) out.description = value('description');
  if (value('gpu_model') && out.gpu > 0) out.gpu_model = value('gpu_model');
  return out;
}

form?.addEventListener('submit', async (event) => {
  event.preventDefault();
  const alert = form.querySelector('[role=alert]');
  alert.hidden = true;
  const button = form.querySelector('[type=submit]');
  button.disabled = true;
  try {
    const env = await api('POST', '/api/v1/environments', body());
    window.location.assign(`/environments/${encodeURIComponent(env.env_id)}`);
  } catch (err) {
    showError(form, err);
    alert.focus?.();
  } finally {
    button.disabled = false;
  }
});
