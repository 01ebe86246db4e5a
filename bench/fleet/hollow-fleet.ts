import { status, type ServiceError } from '@grpc/grpc-js';
import { parseGpuQueryCsv } from '../../agent/discovery/nvidia-smi-parse.js';
import { GpuHealth, ObservedState } from '../../gen/remotegpu/v1/types.js';
import { fixtureQueryFields, readFixture } from '../../test/helpers/nvidia-smi-fixtures.js';
import { startTestAgent, type GpuFacts, type TestAgent } from '../../test/helpers/test-agent.js';
import { percentiles, type Percentiles } from './http-load.js';

// Hollow agents, kubemark-style: every host is a real AgentService (its own gRPC server on an
// ephemeral 127.0.0.1 port, its own key and certificate under mutual TLS) that registers through
// the controller's real ControlPlane Register with the join token and reports through the real
// ReportStatus, but runs no containers: it remembers what the controller applied and reports it
// running (test/helpers/test-agent.ts). One process serves thousands of them.

/** The GPUs of an H100 SXM 8-GPU server, from a recorded nvidia-smi capture. */
const FIXTURE = 'h100-80gb-hbm3-sxm_x8_query-gpu-SUBSET_csv-noheader-nounits_DERIVED.txt';
const FIXTURE_GPUS = parseGpuQueryCsv(readFixture(FIXTURE), fixtureQueryFields(FIXTURE));

/** The fixture's GPUs with UUIDs unique to host `n` of run `run` (each host is another machine). */
export function hostGpus(run: string, n: number): GpuFacts[] {
  return FIXTURE_GPUS.map((g) => ({
    index: g.index,
    uuid: `GPU-${run}-${n.toString(16).padStart(5, '0')}-${g.uuid.slice(4, 17)}`,
    model: g.model,
    memoryBytes: g.memoryBytes,
    memoryUsedBytes: g.memoryUsedBytes,
    utilizationPercent: Math.max(0, g.utilizationPercent),
    temperatureC: Math.max(0, g.temperatureC),
    pciBusId: g.pciBusId,
    driverVersion: g.driverVersion,
    cudaVersion: g.cudaVersion || '12.7',
    health: GpuHealth.GPU_HEALTH_HEALTHY,
  }));
}

export const GPUS_PER_HOST = FIXTURE_GPUS.length;

export interface FleetOptions {
  readonly run: string;
  readonly hosts: number;
  readonly controllerAddress: string;
  readonly joinToken: string;
  readonly caPem: string | undefined;
  readonly insecure: boolean;
  /** Registrations in flight at once. */
  readonly registerConcurrency: number;
}

/** Registers again, as an agent does, while the controller answers UNAVAILABLE (its database pool was busy). */
async function registering(start: () => Promise<TestAgent>): Promise<TestAgent> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if ((err as ServiceError).code !== status.UNAVAILABLE || attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

export class HollowFleet {
  readonly agents: TestAgent[] = [];
  private readonly latencies: number[] = [];
  private errors = 0;
  private firstError: string | undefined;
  private timers: NodeJS.Timeout[] = [];
  private reporting = false;
  /** Hosts with at least one accepted report. */
  private readonly reported = new Set<TestAgent>();

  private constructor(private readonly options: FleetOptions) {}

  /** Starts and registers `hosts` hollow agents; resolves with the fleet and how long it took. */
  static async start(options: FleetOptions): Promise<{ fleet: HollowFleet; registerSeconds: number }> {
    const fleet = new HollowFleet(options);
    const t0 = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < options.hosts) {
        const n = next++;
        const agent = await registering(() => startTestAgent({
          controllerAddress: options.controllerAddress,
          joinToken: options.joinToken,
          ...(options.caPem ? { caPem: options.caPem } : {}),
          insecure: options.insecure,
          gpus: hostGpus(options.run, n),
          cpuCores: 224,
          memoryBytes: 2048 * 2 ** 30,
          diskTotalBytes: 30 * 2 ** 40,
          hostname: `hollow-${options.run}-${n}`,
          // Every hollow host is a machine of its own: its port space is its own (lockPortSpace).
          machineId: `hollow-${options.run}-${n}`,
          publishAddress: '127.0.0.1',
        }));
        fleet.agents[n] = agent;
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.registerConcurrency, options.hosts) }, worker));
    return { fleet, registerSeconds: (performance.now() - t0) / 1000 };
  }

  /**
   * Every host reports `intervalMs` after its previous report ended (as the agent's reporter does:
   * never two of one host at once). `spread`: host n's first report at n/hosts of the interval
   * (even, the default), at a random point of it, or all at once (aligned).
   */
  startReporting(intervalMs: number, spread: 'even' | 'random' | 'aligned'): void {
    this.stopReporting();
    this.reporting = true;
    this.agents.forEach((agent, n) => {
      const offset = spread === 'aligned' ? 0 : spread === 'random' ? Math.random() * intervalMs : (n / this.agents.length) * intervalMs;
      const tick = () => {
        void this.reportOnce(agent).finally(() => {
          if (this.reporting) this.timers[n] = setTimeout(tick, intervalMs);
        });
      };
      this.timers[n] = setTimeout(tick, offset);
    });
  }

  private async reportOnce(agent: TestAgent): Promise<void> {
    const t0 = performance.now();
    try {
      await agent.report();
      this.latencies.push(performance.now() - t0);
      this.reported.add(agent);
    } catch (err) {
      this.errors++;
      this.firstError ??= `${(err as ServiceError).code ?? ''} ${(err as Error).message}`;
    }
  }

  /** Resolves once every host had a report answered (connections made), or after `timeoutMs`; how many had. */
  async waitAllReported(timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (this.reported.size < this.agents.length && performance.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    return this.reported.size;
  }

  /** Latencies of the reports that completed since the last call (ms), and failures. */
  takeReportStats(): Percentiles & { errors: number; firstError?: string } {
    const stats = { ...percentiles(this.latencies.splice(0)), errors: this.errors, ...(this.firstError ? { firstError: this.firstError } : {}) };
    this.errors = 0;
    this.firstError = undefined;
    return stats;
  }

  stopReporting(): void {
    this.reporting = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  /** Environments the hollow agents run now (applied and not stopped or removed). */
  runningCount(): number {
    let n = 0;
    for (const a of this.agents) for (const c of a.containers.values()) if (c.status.state === ObservedState.OBSERVED_STATE_RUNNING) n++;
    return n;
  }

  async close(): Promise<void> {
    this.stopReporting();
    for (let i = 0; i < this.agents.length; i += 200) await Promise.all(this.agents.slice(i, i + 200).map((a) => a?.close()));
  }
}
