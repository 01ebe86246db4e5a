import http from 'node:http';

// The load tool of the fleet bench: JSON over HTTP/1.1 keep-alive (node:http, no fetch: its own
// overhead would cap the figures), a closed loop of N workers, latency percentiles. The same tool
// measures the bare Hono baseline, so ratios compare like with like.

export interface HttpResult {
  readonly status: number;
  readonly body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON of any route
}

export class HttpClient {
  private readonly agent: http.Agent;
  private readonly url: URL;

  constructor(baseUrl: string, maxSockets = 256) {
    this.url = new URL(baseUrl);
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  /**
   * One request; sent again (at most twice) when a kept-alive connection was reset under it (the
   * server closed it as idle just as it was reused: the request never reached the server).
   */
  async request(method: string, path: string, token?: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(method, path, token, body, headers);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (attempt >= 2 || (code !== 'ECONNRESET' && code !== 'EPIPE')) throw err;
      }
    }
  }

  private once(method: string, path: string, token: string | undefined, body: unknown, headers: Record<string, string>): Promise<HttpResult> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent: this.agent,
          host: this.url.hostname,
          port: this.url.port,
          method,
          path,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
            'accept-language': 'en',
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : null;
            } catch {
              // not JSON (the baseline answers text)
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Like request, but throws unless the status is `expect`. */
  async expect(status: number, method: string, path: string, token?: string, body?: unknown): Promise<HttpResult> {
    const res = await this.request(method, path, token, body);
    if (res.status !== status) throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    return res;
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface Percentiles {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** p50/p99/max of samples (ms), rounded to 0.1 ms. */
export function percentiles(samples: readonly number[]): Percentiles {
  if (samples.length === 0) return { n: 0, p50: NaN, p99: NaN, max: NaN };
  const s = Float64Array.from(samples).sort();
  const at = (q: number) => Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 10) / 10;
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: Math.round(s[s.length - 1]! * 10) / 10 };
}

export interface LoadResult extends Percentiles {
  readonly perSecond: number;
  readonly errors: number;
  readonly firstError?: string;
}

/**
 * Runs `op` from `concurrency` workers until `count` operations were started or `durationMs`
 * passed (whichever is given first). An op that throws counts as an error (and its latency is not
 * kept).
 */
export async function closedLoop(options: { concurrency: number; count?: number; durationMs?: number }, op: (i: number) => Promise<void>): Promise<LoadResult> {
  const latencies: number[] = [];
  let started = 0;
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const deadline = options.durationMs === undefined ? Infinity : t0 + options.durationMs;
  const limit = options.count ?? Infinity;
  const worker = async () => {
    while (started < limit && performance.now() < deadline) {
      const i = started++;
      const s = performance.now();
      try {
        await op(i);
        latencies.push(performance.now() - s);
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  return { ...percentiles(latencies), perSecond: Math.round((latencies.length / seconds) * 10) / 10, errors, ...(firstError ? { firstError } : {}) };
}
