import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { serve, type ServerType } from '@hono/node-server';
import { ConfigError } from '../common/config.js';
import type { HttpTlsFiles } from './config.js';

/** The REST API's listening server: plain HTTP, or HTTPS with REMOTEGPU_HTTP_TLS_CERT/KEY. */
export interface HttpListener {
  /** Base URL a client on this machine uses, e.g. https://127.0.0.1:8443. */
  readonly url: string;
  /** Where the server listens, as HOST:PORT (0.0.0.0 or [::] for every interface). */
  readonly listen: string;
  /** Stops the server, ending open connections (log followers) at once. */
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
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = tls
      ? serve({ fetch, hostname, port, createServer: createHttpsServer, serverOptions: { cert: tls.cert, key: tls.key } }, () => resolve(s))
      : serve({ fetch, hostname, port }, () => resolve(s));
    s.once('error', (err) => reject(new Error(`cannot listen for ${tls ? 'HTTPS' : 'HTTP'} on ${hostname}:${port}: ${err.message}`)));
  });
  const actualPort = (server.address() as AddressInfo).port;
  const scheme = tls ? 'https' : 'http';
  return { url: `${scheme}://${urlHost(shownHost(hostname))}:${actualPort}`, listen: `${urlHost(hostname)}:${actualPort}`, close: () => closeHttp(server) };
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

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/** A client on this machine reaches a wildcard listener on loopback. */
function shownHost(host: string): string {
  return isWildcard(host) ? '127.0.0.1' : host;
}

/** IPv6 literals go in brackets in URLs and HOST:PORT. */
function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function closeHttp(server: ServerType): Promise<void> {
  return new Promise((resolve) => {
    // Followers of log streams keep connections open; end them so shutdown is prompt.
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close(() => resolve());
  });
}
