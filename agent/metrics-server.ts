import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostForPort } from '../common/format.js';
import type { AgentMetrics } from './metrics.js';

/** The agent's metrics listener. */
export interface MetricsListener {
  /** http://HOST:PORT/metrics as a client here reaches it (the port picked for :0 included). */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text format) on `listen` (HOST:PORT, REMOTEGPU_AGENT_METRICS_ADDR):
 * plain HTTP, no authentication, nothing else (404). Bind it to an address only the monitoring
 * network reaches: the series name the environments on this host.
 */
export async function serveMetrics(listen: string, metrics: AgentMetrics): Promise<MetricsListener> {
  const cut = listen.lastIndexOf(':');
  const host = listen.slice(0, cut).replace(/^\[(.*)\]$/, '$1');
  const port = Number(listen.slice(cut + 1));
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: the agent serves GET /metrics only\n');
      return;
    }
    metrics.registry.metrics().then(
      (body) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType, 'Cache-Control': 'no-store' }).end(body),
      (err: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot listen for metrics on ${listen} (REMOTEGPU_AGENT_METRICS_ADDR): ${err.message}`)));
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    url: `http://${hostForPort(shown)}:${bound}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
