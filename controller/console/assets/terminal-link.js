// The client side of the terminal WebSocket protocol, apart from xterm.js and the page (so a test can
// drive it over a real WebSocket): keystrokes as binary frames, resizes as {"type":"resize"} text
// frames, and with ?flow=ack the acknowledgements of processed output ({"type":"ack","bytes":N}).
// While the socket is still connecting, typed input is kept (up to EARLY_INPUT_BYTES) and the last
// size remembered; both are sent when it opens, the size first.

/** Input typed before the socket opens that is kept for it; more is dropped. */
export const EARLY_INPUT_BYTES = 64 * 1024;
/** Processed output acknowledged in one frame at least (unless nothing more is being written). */
export const ACK_BATCH_BYTES = 64 * 1024;

const CONNECTING = 0;
const OPEN = 1;

/**
 * Wraps `ws` (a browser WebSocket, or anything with its readyState, send and addEventListener).
 * input(text) and resize(cols, rows) send or keep; output(bytes, write) hands received output to
 * `write(data, done)` (xterm's term.write) and acknowledges it once `done` is called.
 */
export function terminalLink(ws) {
  const encoder = new TextEncoder();
  let early = [];
  let earlyBytes = 0;
  let size;
  let unacked = 0;
  let writing = 0;
  ws.addEventListener('open', () => {
    if (size) ws.send(JSON.stringify({ type: 'resize', cols: size.cols, rows: size.rows }));
    for (const data of early) ws.send(data);
    early = [];
    earlyBytes = 0;
  });
  const ack = () => {
    if (ws.readyState === OPEN && unacked > 0) ws.send(JSON.stringify({ type: 'ack', bytes: unacked }));
    unacked = 0;
  };
  return {
    input(text) {
      const data = encoder.encode(text);
      if (ws.readyState === OPEN) ws.send(data);
      else if (ws.readyState === CONNECTING && earlyBytes + data.length <= EARLY_INPUT_BYTES) {
        early.push(data);
        earlyBytes += data.length;
      }
    },
    resize(cols, rows) {
      if (ws.readyState === OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
      else if (ws.readyState === CONNECTING) size = { cols, rows };
    },
    output(data, write) {
      writing += 1;
      write(data, () => {
        writing -= 1;
        unacked += data.length;
        if (unacked >= ACK_BATCH_BYTES || writing === 0) ack();
      });
    },
  };
}
