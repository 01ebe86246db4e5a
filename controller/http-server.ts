import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { maxHeaderSize } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext } from 'node:tls';
import { serve, type ServerType } from '@hono/node-server';
import { WebSocketServer } from 'ws';
import { ConfigError } from '../common/config.js';
import { ERROR_TABLE, type ErrorCode } from '../common/errors.js';
import { hostForPort } from '../common/format.js';
import { isWildcard } from '../common/ports.js';
import type { HttpTlsFiles } from './config.js';

/** The REST API's listening server: plain HTTP, or HTTPS with REMOTEGPU_HTTP_TLS_CERT/KEY. */
export interface HttpListener {
  /** Base URL a client on this machine uses, e.g. https://127.0.0.1:8443. */
  readonly url: string;
  /** Where the server listens, as HOST:PORT (0.0.0.0 or [::] for every interface). */
  readonly listen: string;
  /** Stops the server, ending open connections (log followers, terminals) at once. */
  close(): Promise<void>;
}

type Fetch = (req: Request) => Response | Promise<Response>;

/** A certificate (chain) and its private key, PEM: what readTlsFiles returns. */
export interface TlsPem {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/**
 * Serves `fetch` on `hostname:port`: HTTPS with `tls`, else HTTP. Responses stream either way (log
 * follows are long-lived server-sent event responses).
 */
export async function listenHttp(fetch: Fetch, hostname: string, port: number, tls: TlsPem | undefined): Promise<HttpListener> {
  // WebSocket upgrades (the terminal) reach the app through @hono/node-server's upgradeWebSocket.
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  const websocket = { server: wss };
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = tls
      ? serve({ fetch, hostname, port, websocket, createServer: createHttpsServer, serverOptions: { cert: tls.cert, key: tls.key } }, () => resolve(s))
      : serve({ fetch, hostname, port, websocket }, () => resolve(s));
    s.once('error', (err) => reject(new Error(`cannot listen for ${tls ? 'HTTPS' : 'HTTP'} on ${hostname}:${port}: ${err.message}`)));
  });
  handleBrokenRequests(server, tls !== undefined);
  const actualPort = (server.address() as AddressInfo).port;
  const scheme = tls ? 'https' : 'http';
  return { url: `${scheme}://${hostForPort(shownHost(hostname))}:${actualPort}`, listen: `${hostForPort(hostname)}:${actualPort}`, close: () => closeHttp(server, wss) };
}

/** How long a closing connection keeps reading (and dropping) what the client still sends, and how much of it. */
const LINGER_MS = 2_000;
const LINGER_MAX_BYTES = 8 * 1024 * 1024;

/**
 * Requests Node's HTTP parser refuses before the app sees them are answered with the contract's
 * envelope and `Connection: close`, like every other error: a header block over Node's limit 431
 * (43101), a request that took too long to arrive 408 (40801), anything else that is not HTTP 400
 * (40001). Node's own answers had no body.
 *
 * Every connection the server closes while the client may still be sending (a 413 answered before
 * the body was read, one of the answers above) closes gracefully: the answer, then a FIN, then
 * what still arrives is read and dropped until the client closes, for at most LINGER_MS and
 * LINGER_MAX_BYTES. Closing at once with unread data makes the kernel send a reset, which can
 * destroy the answer before the client read it ("socket hang up" instead of the 413).
 */
function handleBrokenRequests(server: ServerType, tls: boolean): void {
  server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => lingerOnClose(socket));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // A response already under way on this socket (headers sent): an answer written now would land
    // inside its body, so the connection is closed instead (as Node's own handler does).
    const current = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || current?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, reason, code, message] = clientErrorAnswer(err);
    const body = JSON.stringify({ code: ERROR_TABLE[code].api, message, data: null });
    socket.write(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    const s = socket as Duplex & { destroySoon?: () => void };
    if (s.destroySoon) s.destroySoon();
    else socket.end();
  });
}

/** Status line, error code and message for a request Node's parser refused. Pure. */
export function clientErrorAnswer(err: NodeJS.ErrnoException): [number, string, ErrorCode, string] {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'Request Header Fields Too Large', 'header_too_large', `request headers are larger than ${maxHeaderSize} bytes in all (request line, cookies and tokens included)`];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_REQUEST_TIMEOUT':
      return [408, 'Request Timeout', 'request_timeout', 'the request did not arrive in time; send it again'];
    default:
      return [400, 'Bad Request', 'invalid_argument', `malformed HTTP request (${err.code ?? 'parse error'})`];
  }
}

/**
 * Makes the socket's destroySoon (what Node's HTTP server calls to close a connection after its
 * last answer) close gracefully: end (FIN after the answer), then read and drop until the client
 * closes, LINGER_MS pass or LINGER_MAX_BYTES arrive, then destroy.
 */
function lingerOnClose(socket: Socket): void {
  let closing = false;
  socket.destroySoon = function lingeringClose(this: Socket) {
    if (closing || this.destroyed) return;
    closing = true;
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    timer.unref();
    this.once('close', () => clearTimeout(timer));
    this.once('end', () => this.destroy());
    let dropped = 0;
    this.on('data', (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > LINGER_MAX_BYTES) this.destroy();
    });
    this.end();
    this.resume();
  };
}

/** How to announce the REST API: its URL, plus where it listens when that is every interface. */
export function describeRestApi(api: { readonly httpUrl: string; readonly httpListen: string }): string {
  return /^(0\.0\.0\.0|\[::\]):\d+$/.test(api.httpListen) ? `${api.httpUrl} (listening on ${api.httpListen}, all interfaces)` : api.httpUrl;
}

/** Reads and checks the certificate and key PEM files; each problem names its file and variable. */
export function readTlsFiles(files: HttpTlsFiles): TlsPem {
  const cert = readPem('REMOTEGPU_HTTP_TLS_CERT', files.certFile);
  const key = readPem('REMOTEGPU_HTTP_TLS_KEY', files.keyFile);
  check('REMOTEGPU_HTTP_TLS_CERT', files.certFile, 'not a PEM certificate', () => new X509Certificate(cert));
  check('REMOTEGPU_HTTP_TLS_KEY', files.keyFile, 'not a PEM private key (an unencrypted one: the controller asks for no passphrase)', () => createPrivateKey(key));
  check('REMOTEGPU_HTTP_TLS_KEY', files.keyFile, `does not match the certificate in ${files.certFile} (REMOTEGPU_HTTP_TLS_CERT)`, () => createSecureContext({ cert, key }));
  return { cert, key };
}

function readPem(variable: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'a directory, not a file' : String((err as Error).message);
    throw new ConfigError(`invalid configuration: ${variable}=${JSON.stringify(file)}: cannot read the file (${why})`);
  }
}

function check(variable: string, file: string, problem: string, fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${variable}=${JSON.stringify(file)}: ${problem} (${(err as Error).message.split('\n')[0]})`);
  }
}

/** A client on this machine reaches a wildcard listener on loopback. */
function shownHost(host: string): string {
  return isWildcard(host) ? '127.0.0.1' : host;
}


function closeHttp(server: ServerType, wss: WebSocketServer): Promise<void> {
  // Upgraded connections (terminals) are no longer the HTTP server's: close them here.
  for (const ws of wss.clients) {
    ws.close(1001, 'controller shutting down');
    ws.terminate();
  }
  return new Promise((resolve) => {
    // Followers of log streams keep connections open; end them so shutdown is prompt.
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close(() => resolve());
  });
}
