import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ensureBusyboxImage, freePort, releaseRunDir, removeNamespace, testDocker, testRunDir } from '../../helpers/docker.js';
import type { RestAnswer } from '../../helpers/rest.js';
import { dropDatabase, freshDatabase } from './postgres.js';
import { killLeftovers, PlatformProcess, ROOT } from './process.js';

// One scenario's platform: its own database on the suite's PostgreSQL server, one or two
// controllers and two agents, each a child process, agents on the local Docker engine (one machine:
// one machine id) with their own label namespaces and fake GPUs (different recorded captures: GPU
// UUIDs differ).

export const ADMIN_TOKEN = 'faults-admin-token-0123456789abcdef';
const JOIN_SECRET = 'faults-join-token-0123456789abcdef';
const SECRET_KEY = 'faults-secret-key-0123456789abcdef-0123456789';
export const IMAGE = 'busybox-test';
export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

const FAKE_GPUS = ['a40_x10_nvidia-smi-q.txt', 'h100-80gb-hbm3-sxm_x8_nvidia-smi-q.txt'];
/**
 * The address each agent publishes ports on: by default both 127.0.0.1, the documented setup of two
 * agents on one engine (they must never publish the same address and port).
 * REMOTEGPU_FAULTS_PUBLIC_ADDRESSES=127.0.0.1,::1 separates them where that does not hold yet.
 */
const PUBLIC_ADDRESSES = (process.env.REMOTEGPU_FAULTS_PUBLIC_ADDRESSES ?? '127.0.0.1').split(',').map((a) => a.trim());
/** The GPU model of each agent's capture: a create names one to choose the agent. */
const GPU_MODELS = ['A40', 'H100'];

export interface AgentOptions {
  /** Loopback address the agent listens on and advertises (default 127.0.0.1). */
  readonly listenHost?: string;
  /** Address the agent dials the controllers at (default 127.0.0.1). */
  readonly controllerHost?: string;
}

export interface ClusterOptions {
  /** Short name: databases, namespaces and machine ids derive from it. [a-z0-9-] */
  readonly scenario: string;
  /** First of the 100 published ports this scenario may use (SSH: the first 80, Jupyter: the last 20). */
  readonly portBase: number;
  readonly controllers?: number;
  readonly agents?: readonly AgentOptions[];
  /** Interface the controllers' gRPC server binds (0.0.0.0 when agents dial other loopback addresses). */
  readonly grpcHost?: string;
  readonly hostTimeoutMs?: number;
}

export interface EnvRow {
  id: string;
  status: string;
  desired_state: string;
  host_id: string | null;
  deleted_at: Date | null;
  gpu: number;
  status_reason: string;
}

export class FaultCluster {
  readonly controllers: PlatformProcess[] = [];
  readonly agents: PlatformProcess[] = [];
  readonly namespaces: string[] = [];
  readonly httpPorts: number[] = [];
  readonly grpcPorts: number[] = [];
  /** Each agent's AgentService address, host:port. */
  readonly agentListen: string[] = [];
  readonly dbName: string;
  dbUrl = '';
  pool: pg.Pool | undefined;
  private readonly dir: string;
  private readonly runDirs: string[] = [];
  private caPin = '';
  private preferred = 0;

  private readonly pidFile: string;

  private constructor(readonly options: ClusterOptions) {
    this.dbName = `faults_${options.scenario.replace(/-/g, '_')}`;
    this.pidFile = path.join(tmpdir(), `remotegpu-faults-${options.scenario}.pids`);
    this.dir = mkdtempSync(path.join(tmpdir(), `rgpu-faults-${options.scenario}-`));
  }

  static async start(options: ClusterOptions): Promise<FaultCluster> {
    const cluster = new FaultCluster(options);
    try {
      await cluster.boot();
    } catch (err) {
      const tails = [...cluster.controllers, ...cluster.agents].map((p) => p.tail(30)).join('\n');
      await cluster.stop();
      throw new Error(`${(err as Error).message}\n${tails}`);
    }
    return cluster;
  }

  private async boot(): Promise<void> {
    const o = this.options;
    killLeftovers(this.pidFile);
    await ensureBusyboxImage();
    for (const ns of this.agentNamespaces()) await removeNamespace(ns);
    this.dbUrl = await freshDatabase(this.dbName);
    this.pool = new pg.Pool({ connectionString: this.dbUrl, max: 3 });
    this.pool.on('error', () => undefined);
    for (let i = 0; i < (o.controllers ?? 1); i++) {
      this.httpPorts.push(await freePort());
      this.grpcPorts.push(await freePort());
      this.controllers.push(
        new PlatformProcess(`controller-${i}`, 'controller/main.ts', {
          DATABASE_URL: this.dbUrl,
          REMOTEGPU_DATA_DIR: path.join(this.dir, `controller-${i}`),
          REMOTEGPU_HTTP_HOST: '127.0.0.1',
          REMOTEGPU_HTTP_PORT: String(this.httpPorts[i]),
          REMOTEGPU_GRPC_HOST: o.grpcHost ?? '127.0.0.1',
          REMOTEGPU_GRPC_PORT: String(this.grpcPorts[i]),
          REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN_TOKEN,
          REMOTEGPU_JOIN_TOKEN: JOIN_SECRET,
          REMOTEGPU_SECRET_KEY: SECRET_KEY,
          REMOTEGPU_RECONCILE_INTERVAL_MS: '500',
          REMOTEGPU_REPORT_INTERVAL_MS: '1000',
          REMOTEGPU_HOST_TIMEOUT_MS: String(o.hostTimeoutMs ?? 6000),
          REMOTEGPU_AGENT_TIMEOUT_MS: '5000',
          REMOTEGPU_SSH_PORT_RANGE: `${o.portBase}-${o.portBase + 79}`,
          REMOTEGPU_JUPYTER_PORT_RANGE: `${o.portBase + 80}-${o.portBase + 99}`,
          REMOTEGPU_LOG_LEVEL: 'info',
        }, this.pidFile),
      );
    }
    // The first replica creates the schema and the CA alone; the others then start side by side.
    await this.startController(0);
    this.caPin = (await this.controllers[0]!.waitForOutput(/cluster CA (sha256:[0-9a-f]{64})/, 1000))[1]!;
    await Promise.all(this.controllers.slice(1).map((_, i) => this.startController(i + 1)));
    const created = await this.api('POST', '/api/v1/admin/images', { name: IMAGE, docker_ref: 'remotegpu/busybox-test:1', jupyter_port: null });
    if (created.status !== 201) throw new Error(`image not created: ${created.status} ${JSON.stringify(created.body)}`);

    const agents = o.agents ?? [{}, {}];
    for (const [i, a] of agents.entries()) {
      const listen = `${a.listenHost ?? '127.0.0.1'}:${await freePort()}`;
      this.agentListen.push(listen);
      const runDir = testRunDir();
      this.runDirs.push(runDir);
      this.agents.push(
        new PlatformProcess(`agent-${i}`, 'agent/main.ts', {
          REMOTEGPU_CONTROLLER: this.controllerAddresses(a.controllerHost ?? '127.0.0.1'),
          REMOTEGPU_JOIN_TOKEN: `${JOIN_SECRET}@${this.caPin}`,
          REMOTEGPU_AGENT_LISTEN: listen,
          REMOTEGPU_PUBLIC_ADDRESS: PUBLIC_ADDRESSES[i % PUBLIC_ADDRESSES.length]!,
          REMOTEGPU_AGENT_ADVERTISE: listen,
          REMOTEGPU_DATA_DIR: path.join(this.dir, `agent-${i}`),
          REMOTEGPU_RUN_DIR: runDir,
          REMOTEGPU_FAKE_GPUS: path.join(ROOT, 'test/fixtures/nvidia-smi', FAKE_GPUS[i % FAKE_GPUS.length]!),
          // One machine id for both: two agents on one Docker engine are one machine (their hosts share a port space).
          REMOTEGPU_MACHINE_ID: `faults-${o.scenario}`,
          REMOTEGPU_NAMESPACE: this.agentNamespaces()[i]!,
          REMOTEGPU_CPU_CORES: '64',
          REMOTEGPU_REPORT_INTERVAL_MS: '1000',
          REMOTEGPU_LOG_LEVEL: 'info',
        }, this.pidFile),
      );
      this.namespaces.push(this.agentNamespaces()[i]!);
      this.agents[i]!.start();
    }
    await this.waitHostsOnline(90_000);
  }

  private agentNamespaces(): string[] {
    return (this.options.agents ?? [{}, {}]).map((_, i) => `faults-${this.options.scenario}-${i}`);
  }

  /** Every controller's gRPC address at `host`, comma-separated (agents fail over between them). */
  controllerAddresses(host = '127.0.0.1'): string {
    return this.grpcPorts.map((p) => `${host}:${p}`).join(',');
  }

  async startController(i: number): Promise<void> {
    const c = this.controllers[i]!;
    const from = c.output.length;
    c.start();
    await c.waitForOutput(/REST API on/, 90_000, from);
  }

  /** One REST call to the first controller that answers (status 0: none did). */
  async api(method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<RestAnswer> {
    const order = this.controllers.map((_, i) => (i + this.preferred) % this.controllers.length);
    let last: unknown;
    for (const i of order) {
      if (!this.controllers[i]!.running) continue;
      try {
        const res = await fetch(`http://127.0.0.1:${this.httpPorts[i]}${p}`, {
          method,
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
          body: body !== undefined ? JSON.stringify(body) : undefined,
          signal: AbortSignal.timeout(15_000),
        });
        const text = await res.text();
        this.preferred = i;
        return { status: res.status, body: text ? JSON.parse(text) : null };
      } catch (err) {
        last = err;
      }
    }
    return { status: 0, body: { error: String(last ?? 'no controller running') } };
  }

  /**
   * POST /environments for a small busybox environment with `gpu` GPUs on the agent `agent`
   * (through its GPU model: the agents have different recorded GPUs).
   */
  createEnv(name: string, gpu: number, agent: number, idempotencyKey?: string): Promise<RestAnswer> {
    const body = { name, image: IMAGE, cpu: 1, memory: 64 * MiB, gpu, storage: GiB, gpu_model: GPU_MODELS[agent % GPU_MODELS.length] };
    return this.api('POST', '/api/v1/environments', body, idempotencyKey ? { 'idempotency-key': idempotencyKey } : {});
  }

  /** Every environment row (SQL on the scenario's database); [] while the database is away. */
  async envs(): Promise<EnvRow[]> {
    try {
      const r = await this.pool!.query<EnvRow>('SELECT id, status, desired_state, host_id, deleted_at, gpu, status_reason FROM environments ORDER BY id');
      return r.rows;
    } catch {
      return [];
    }
  }

  async hosts(): Promise<{ id: string; status: string; agent_address: string }[]> {
    try {
      return (await this.pool!.query('SELECT id, liveness AS status, agent_address FROM hosts WHERE approved')).rows;
    } catch {
      return [];
    }
  }

  /** The host id of agent `i` (by the address it advertises). */
  async hostOf(i: number): Promise<string> {
    const host = (await this.hosts()).find((h) => h.agent_address === this.agentListen[i]);
    if (!host) throw new Error(`no host for agent-${i} (${this.agentListen[i]})`);
    return host.id;
  }

  /** Waits until every agent's host is registered, approved and online. */
  async waitHostsOnline(timeoutMs: number): Promise<void> {
    await this.waitFor('every host online', async () => {
      const hosts = await this.hosts();
      return hosts.filter((h) => h.status === 'online').length === this.agents.length;
    }, timeoutMs);
  }

  /** True when each of `ids` is in `status` (default running). */
  async allIn(ids: readonly string[], status = 'running'): Promise<boolean> {
    const rows = await this.envs();
    const byId = new Map(rows.map((r) => [r.id, r]));
    return ids.length > 0 && ids.every((id) => byId.get(id)?.status === status);
  }

  /** Polls `check` until it holds; throws with a description of the platform's state after `timeoutMs`. */
  async waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 90_000, intervalMs = 100): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await check().catch(() => false)) return;
      const crashed = this.crashes();
      if (crashed.length > 0) throw new Error(`${crashed.join('; ')} while waiting for ${what}\n${await this.describe()}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${await this.describe()}`);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }

  /** Environments, hosts and the tail of every process's output: what a failure message needs. */
  async describe(): Promise<string> {
    const envs = (await this.envs()).map((e) => `${e.id} ${e.status}${e.deleted_at ? ' (deleted)' : ''} on ${e.host_id} ${e.status_reason}`.trim());
    const hosts = (await this.hosts()).map((h) => `${h.id} ${h.agent_address} ${h.status}`);
    const tails = [...this.controllers, ...this.agents].map((p) => p.tail(25));
    return [`environments:\n${envs.join('\n')}`, `hosts:\n${hosts.join('\n')}`, ...tails].join('\n');
  }

  /** Exits of a controller or agent that nobody asked for. */
  crashes(): string[] {
    return [...this.controllers, ...this.agents].flatMap((p) => p.crashes);
  }

  /** Stops every process, removes what the agents left on the engine, drops the database. */
  async stop(): Promise<void> {
    await Promise.all([...this.agents, ...this.controllers].map((p) => p.kill9()));
    await this.pool?.end().catch(() => undefined);
    for (const ns of this.agentNamespaces()) await removeNamespace(ns);
    await removeVolumes(this.agentNamespaces());
    for (const dir of this.runDirs) await releaseRunDir(dir);
    await dropDatabase(this.dbName);
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(this.pidFile, { force: true });
  }
}

/** Removes the environment volumes of the environments the agents of `namespaces` created. */
async function removeVolumes(namespaces: readonly string[]): Promise<void> {
  const docker = testDocker();
  const { Volumes } = await docker.listVolumes().catch(() => ({ Volumes: [] as { Name: string; Labels: Record<string, string> | null }[] }));
  for (const v of Volumes ?? []) {
    const managed = v.Labels?.['remotegpu.managed'];
    if (managed && namespaces.includes(managed)) await docker.getVolume(v.Name).remove().catch(() => undefined);
  }
}
