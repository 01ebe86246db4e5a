// The browser terminal of an environment's page: "Open terminal" asks for a single-use ticket
// (POST /api/v1/environments/{id}/terminal/ticket), opens the WebSocket
// (GET /api/v1/environments/{id}/terminal?ticket=..&cols=..&rows=..) and runs xterm.js (loaded
// before this module as classic scripts: window.Terminal, window.FitAddon) in #terminal.
// Keystrokes go as binary frames, resizes as {"type":"resize"} text frames (terminal-link.js: kept
// while the socket connects); output arrives as binary frames and is acknowledged once xterm has
// processed it (?flow=ack: the controller pauses the shell while too much is unacknowledged, so a
// `yes` cannot flood the page); {"type":"exit","code":N} and the close reason show in #terminal-status.
// #terminal's data-state is "open" while connected, "closed" otherwise.
import { api, showError } from './app.js';
import { terminalLink } from './terminal-link.js';

const box = document.getElementById('terminal');
const openButton = document.getElementById('terminal-open');
const closeButton = document.getElementById('terminal-close');
const status = document.getElementById('terminal-status');
let session;

function setState(state, text) {
  box.dataset.state = state;
  status.textContent = text;
  openButton.hidden = state !== 'closed';
  closeButton.hidden = state === 'closed';
}

async function open() {
  const id = box.dataset.envId;
  const errorBox = document.getElementById('terminal-error');
  errorBox.hidden = true;
  openButton.disabled = true;
  setState('connecting', status.dataset.connecting);
  try {
    const { ticket } = await api('POST', `/api/v1/environments/${encodeURIComponent(id)}/terminal/ticket`);
    session?.dispose();
    session = connect(id, ticket);
  } catch (err) {
    setState('closed', status.dataset.closed);
    showError(errorBox.parentElement, err);
  } finally {
    openButton.disabled = false;
  }
}

function connect(id, ticket) {
  const term = new window.Terminal({ cursorBlink: true, convertEol: false, fontSize: 14, scrollback: 2000 });
  const fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  box.replaceChildren();
  term.open(box);
  fit.fit();
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const query = new URLSearchParams({ ticket, cols: String(term.cols), rows: String(term.rows), flow: 'ack' });
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/environments/${encodeURIComponent(id)}/terminal?${query}`);
  ws.binaryType = 'arraybuffer';
  const link = terminalLink(ws);
  let exitText = '';
  ws.onopen = () => {
    setState('open', status.dataset.open);
    term.focus();
  };
  ws.onmessage = (event) => {
    if (typeof event.data !== 'string') return link.output(new Uint8Array(event.data), (data, done) => term.write(data, done));
    const message = JSON.parse(event.data);
    if (message.type === 'exit') exitText = status.dataset.exit.replace('{code}', String(message.code));
  };
  ws.onclose = (event) => {
    const reason = event.reason || exitText || `code ${event.code}`;
    setState('closed', `${status.dataset.closed}: ${exitText && event.reason ? `${exitText}, ${event.reason}` : reason}`);
  };
  const input = term.onData((data) => link.input(data));
  const resize = term.onResize(({ cols, rows }) => link.resize(cols, rows));
  const onWindowResize = () => fit.fit();
  window.addEventListener('resize', onWindowResize);
  return {
    close: () => ws.close(1000, 'closed by the user'),
    dispose: () => {
      input.dispose();
      resize.dispose();
      window.removeEventListener('resize', onWindowResize);
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000, 'closed by the user');
      term.dispose();
    },
  };
}

if (box && openButton) {
  openButton.addEventListener('click', open);
  closeButton.addEventListener('click', () => session?.close());
}
