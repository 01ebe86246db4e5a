import { closedLoop, percentiles, type HttpClient, type LoadResult, type Percentiles } from './http-load.js';

// The REST side of the fleet bench: users and tokens (admin API), the image, one-GPU creates at a
// fixed concurrency, waiting for them to run, and the read test.

export const IMAGE = 'bench-devbox';

export interface Tenant {
  readonly userId: number;
  readonly token: string;
}

/** `count` users with a token each, and the catalog image the creates use. */
export async function setUpTenants(http: HttpClient, admin: string, count: number, run: string): Promise<Tenant[]> {
  const existing = await http.request('GET', '/api/v1/admin/images?page_size=100', admin);
  if (!JSON.stringify(existing.body).includes(`"${IMAGE}"`)) await http.expect(201, 'POST', '/api/v1/admin/images', admin, { name: IMAGE, docker_ref: 'remotegpu/devbox:1' });
  const tenants: Tenant[] = [];
  for (let i = 0; i < count; i++) {
    const user = await http.expect(201, 'POST', '/api/v1/admin/users', admin, { name: `bench-${run}-${i}` });
    const userId = user.body.data.id as number;
    const token = await http.expect(201, 'POST', `/api/v1/admin/users/${userId}/tokens`, admin, { name: 'bench' });
    tenants.push({ userId, token: token.body.data.token as string });
  }
  return tenants;
}

export interface CreateFigures {
  readonly requested: number;
  readonly created: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly latencyMs: Percentiles;
  /** Refused creates (409 no capacity and anything else), and the first refusal's text. */
  readonly errors: number;
  /** Attempts answered 503 and sent again with the same Idempotency-Key. */
  readonly retried503: number;
  /** Creates refused with 503 under load that, asked again with their key afterwards, had been made after all. */
  readonly recoveredAfterLoad: number;
  readonly firstError?: string;
}

export interface Created {
  readonly envId: string;
  /** Date.now() when the POST was sent. */
  readonly sentAt: number;
}

/** One-GPU creates through REST from `concurrency` workers: `count` of them, or until `maxSeconds`. */
export async function runCreates(http: HttpClient, tenants: readonly Tenant[], o: { count: number; concurrency: number; maxSeconds: number }): Promise<{ figures: CreateFigures; created: Created[] }> {
  const created: Created[] = [];
  const runTag = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  let retried503 = 0;
  const refused: { token: string; body: object; key: Record<string, string>; sentAt: number }[] = [];
  const t0 = performance.now();
  const res: LoadResult = await closedLoop({ concurrency: o.concurrency, count: o.count, durationMs: o.maxSeconds * 1000 }, async (i) => {
    const tenant = tenants[i % tenants.length]!;
    const sentAt = Date.now();
    const body = { name: `b-${i}`, image: IMAGE, cpu: 1, memory: 2 ** 30, gpu: 1, storage: 2 ** 30 };
    // As a careful client does: an Idempotency-Key, and a retry of a 503 (the database pool was
    // busy) that returns the same environment if the first attempt created it after all.
    const key = { 'idempotency-key': `${runTag}-${i}` };
    let r = await http.request('POST', '/api/v1/environments', tenant.token, body, key);
    for (let attempt = 0; r.status === 503 && attempt < 3; attempt++) {
      retried503++;
      r = await http.request('POST', '/api/v1/environments', tenant.token, body, key);
    }
    if (r.status === 503) refused.push({ token: tenant.token, body, key, sentAt });
    if (r.status !== 201 && r.status !== 200) throw new Error(`HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    created.push({ envId: r.body.data.env_id as string, sentAt });
  });
  const seconds = (performance.now() - t0) / 1000;
  // Once the load is over, each create still refused with 503 is asked once more with its key: one
  // that the controller made after all is returned now, joins the created ones and must run too.
  let recoveredAfterLoad = 0;
  for (const q of refused) {
    const r = await http.request('POST', '/api/v1/environments', q.token, q.body, q.key);
    if (r.status === 200 || r.status === 201) {
      recoveredAfterLoad++;
      created.push({ envId: r.body.data.env_id as string, sentAt: q.sentAt });
    }
  }
  const figures: CreateFigures = {
    requested: o.count,
    created: created.length,
    seconds: Math.round(seconds * 10) / 10,
    perSecond: Math.round((created.length / seconds) * 10) / 10,
    latencyMs: { n: res.n, p50: res.p50, p99: res.p99, max: res.max },
    errors: res.errors,
    retried503,
    recoveredAfterLoad,
    ...(res.firstError ? { firstError: res.firstError } : {}),
  };
  return { figures, created };
}

/** Waits until the admin listing counts `expected` running environments, or `timeoutS` passes; the count reached. */
export async function waitRunning(http: HttpClient, admin: string, expected: number, timeoutS: number): Promise<{ running: number; waitedS: number }> {
  const t0 = performance.now();
  let running = 0;
  for (;;) {
    const r = await http.request('GET', '/api/v1/environments?status=running&page_size=1', admin);
    running = Number(r.body?.data?.pagination?.total ?? 0);
    const waitedS = Math.round((performance.now() - t0) / 100) / 10;
    if (running >= expected || waitedS >= timeoutS) return { running, waitedS };
    await new Promise((res) => setTimeout(res, 500));
  }
}

export interface RunningFigures {
  /** Created environments whose detail says running. */
  readonly running: number;
  readonly notRunning: number;
  readonly notRunningExamples: string[];
  /** POST sent → started_at (the hollow agent starting it, recorded with "running"), ms. */
  readonly createToRunningMs: Percentiles;
}

/** Reads every created environment's detail: its status and create → running time. */
export async function createToRunning(http: HttpClient, admin: string, created: readonly Created[]): Promise<RunningFigures> {
  const times: number[] = [];
  const notRunning: string[] = [];
  await closedLoop({ concurrency: 32, count: created.length }, async (i) => {
    const c = created[i]!;
    const r = await http.expect(200, 'GET', `/api/v1/environments/${c.envId}`, admin);
    const d = r.body.data as { status: string; started_at: string | null };
    if (d.status !== 'running' || !d.started_at) notRunning.push(`${c.envId}:${d.status}`);
    else times.push(Date.parse(d.started_at) - c.sentAt);
  });
  return { running: times.length, notRunning: notRunning.length, notRunningExamples: notRunning.slice(0, 5), createToRunningMs: percentiles(times) };
}

export interface ReadFigures {
  readonly rows: number;
  readonly concurrency: number;
  readonly listPage1: LoadResult;
  readonly deepPage: LoadResult & { readonly page: number };
  readonly detail: LoadResult;
  /** `pagination.total` of the reader's listing, and whether it equals the rows the reader sees in SQL. */
  readonly total: number;
  readonly totalExpected: number;
}

/** The read test, as the owner of `ids`: list page 1, a deep page (page_size 25), detail by random id. */
export async function runReads(http: HttpClient, reader: Tenant, ids: readonly string[], visible: number, o: { concurrency: number; seconds: number }): Promise<ReadFigures> {
  const first = await http.expect(200, 'GET', '/api/v1/environments?page=1&page_size=25', reader.token);
  const total = Number(first.body.data.pagination.total);
  const page = Math.max(1, Math.min(4000, Math.floor(visible / 25)));
  const get = async (path: string) => {
    const r = await http.request('GET', path, reader.token);
    if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status}`);
  };
  const load = { concurrency: o.concurrency, durationMs: o.seconds * 1000 };
  const listPage1 = await closedLoop(load, () => get('/api/v1/environments?page=1&page_size=25'));
  const deepPage = await closedLoop(load, () => get(`/api/v1/environments?page=${page}&page_size=25`));
  const detail = await closedLoop(load, () => get(`/api/v1/environments/${ids[Math.floor(Math.random() * ids.length)]}`));
  return { rows: ids.length, concurrency: o.concurrency, listPage1, deepPage: { ...deepPage, page }, detail, total, totalExpected: visible };
}
