/* global window, document, MutationObserver */
// The in-page side of bench/terminal-latency.ts, injected with page.addInitScript before the
// console's own scripts run. Every timestamp is taken inside the page with performance.now(), so
// the figures exclude playwright's own round trips:
// - keydown (capture, on window): when the browser dispatched the key to the page;
// - WebSocket send / message (the page's WebSocket class wrapped): when the keystroke left for the
//   controller, and when the next output came back;
// - a MutationObserver on the terminal's rows: when the character appeared in the DOM.
(function () {
  'use strict';
  const sends = [];
  const messages = [];
  const Original = window.WebSocket;
  const send = Original.prototype.send;
  Original.prototype.send = function (data) {
    sends.push(performance.now());
    return send.call(this, data);
  };
  function Wrapped(url, protocols) {
    const ws = protocols === undefined ? new Original(url) : new Original(url, protocols);
    ws.addEventListener('message', () => messages.push(performance.now()));
    return ws;
  }
  Object.assign(Wrapped, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  Wrapped.prototype = Original.prototype;
  window.WebSocket = Wrapped;

  let pending;
  let done = Promise.resolve();
  let rows;
  const count = (ch) => (rows.textContent || '').split(ch).length - 1;

  window.__rgpuProbe = {
    /** Starts watching `selector` (the terminal's .xterm-rows). */
    install(selector) {
      rows = document.querySelector(selector);
      if (!rows) throw new Error(`no ${selector} in the page`);
      window.addEventListener('keydown', (e) => {
        if (pending && pending.t0 === undefined && e.key === pending.ch) pending.t0 = performance.now();
      }, true);
      new MutationObserver(() => {
        if (!pending || pending.t0 === undefined || count(pending.ch) <= pending.before) return;
        const now = performance.now();
        const t0 = pending.t0;
        const sent = sends.find((t) => t >= t0);
        const back = sent === undefined ? undefined : messages.find((t) => t >= sent);
        const nan = (v) => (v === undefined ? null : v);
        pending.resolve({ total: now - t0, toSend: nan(sent === undefined ? undefined : sent - t0), wire: nan(back === undefined ? undefined : back - sent), toDom: nan(back === undefined ? undefined : now - back) });
        pending = undefined;
        sends.length = 0;
        messages.length = 0;
      }).observe(rows, { childList: true, subtree: true, characterData: true });
    },
    /** The next keydown of `ch` starts a sample; it ends when one more `ch` shows in the rows. */
    arm(ch) {
      sends.length = 0;
      messages.length = 0;
      done = new Promise((resolve) => {
        pending = { ch, before: count(ch), t0: undefined, resolve };
      });
    },
    wait(ms) {
      return Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error(`the character did not appear within ${ms} ms`)), ms))]);
    },
    text() {
      return rows ? rows.textContent : '';
    },
  };
})();
