import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { GpuDiscovery } from './discovery/types.js';
import type { ObservedStatus } from './runtime/types.js';

// The agent's Prometheus metrics (served on REMOTEGPU_AGENT_METRICS_ADDR by metrics-server.ts):
// per GPU, its utilization, memory and temperature, labelled with the environment whose running
// container holds it; the reports to the controller; the controller's calls to this agent. GPU
// figures are those of the last nvidia-smi scan (one per report interval): a scrape runs nothing.

/** Default process metrics (CPU, memory, event loop, GC) carry this prefix. */
export const AGENT_PROCESS_PREFIX = 'remotegpu_agent_';

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const GPU_LABELS = ['index', 'uuid', 'model', 'environment'] as const;

/** Every metric of one agent, in a registry of its own (tests run several agents in one process). */
export class AgentMetrics {
  readonly registry = new Registry();
  private readonly reports: Histogram<'outcome'>;
  private readonly calls: Histogram<'method' | 'code'>;
  /** GPU UUID → the environment whose running container holds it, from the reporter's last listing. */
  private holders = new Map<string, string>();

  /** `gpus`: the last GPU discovery (HostScan.gpus), read at scrape time. */
  constructor(gpus: () => GpuDiscovery) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: AGENT_PROCESS_PREFIX });
    // Gauges named *_total by prom-client: promtool's lint refuses _total on a gauge; the per-type ones stay.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(AGENT_PROCESS_PREFIX + name);
    this.reports = new Histogram({
      name: 'remotegpu_agent_report_duration_seconds',
      help: 'ReportStatus calls to the controller by outcome (ok, error), from the call to its answer.',
      labelNames: ['outcome'],
      buckets: SECONDS,
      registers,
    });
    this.calls = new Histogram({
      name: 'remotegpu_agent_call_duration_seconds',
      help: 'The controller\'s unary calls to this agent (ApplyEnvironment, StopEnvironment, RemoveEnvironment, InspectEnvironment) by outcome (ok or the error code).',
      labelNames: ['method', 'code'],
      buckets: SECONDS,
      registers,
    });
    const perGpu = (name: string, help: string, value: (g: GpuDiscovery['gpus'][number]) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: GPU_LABELS,
        registers,
        collect: () => {
          const gauge = this.registry.getSingleMetric(name) as Gauge<(typeof GPU_LABELS)[number]>;
          gauge.reset();
          for (const g of gpus().gpus) {
            const v = value(g);
            if (v === undefined || !g.uuid) continue;
            gauge.set({ index: String(g.index), uuid: g.uuid, model: g.model, environment: this.holders.get(g.uuid) ?? '' }, v);
          }
        },
      });
    perGpu('remotegpu_agent_gpu_utilization_ratio', 'GPU utilization (0-1) at the last scan; absent where the GPU does not say (MIG).', (g) => (g.utilizationPercent >= 0 ? g.utilizationPercent / 100 : undefined));
    perGpu('remotegpu_agent_gpu_memory_used_bytes', 'GPU framebuffer memory in use at the last scan.', (g) => (g.memoryBytes > 0 ? g.memoryUsedBytes : undefined));
    perGpu('remotegpu_agent_gpu_memory_total_bytes', 'GPU framebuffer memory.', (g) => (g.memoryBytes > 0 ? g.memoryBytes : undefined));
    perGpu('remotegpu_agent_gpu_temperature_celsius', 'GPU core temperature at the last scan.', (g) => (g.temperatureC >= 0 ? g.temperatureC : undefined));
    perGpu('remotegpu_agent_gpu_healthy', '1 while nvidia-smi reports the GPU healthy, 0 when lost or needing a reset.', (g) => (g.health === 'healthy' ? 1 : 0));
  }

  /** The reporter listed the containers: who holds which GPU now (running containers only). */
  observe(statuses: readonly ObservedStatus[]): void {
    const holders = new Map<string, string>();
    for (const s of statuses) if (s.state === 'running') for (const uuid of s.gpuUuids) holders.set(uuid, s.envId);
    this.holders = holders;
  }

  /** Starts timing one report; call the result with how it ended. */
  reportStarted(): (outcome: 'ok' | 'error') => void {
    const end = this.reports.startTimer();
    return (outcome) => void end({ outcome });
  }

  /** One AgentService call ended: `code` is 'ok' or the error code. */
  call(method: string, code: string, seconds: number): void {
    this.calls.observe({ method, code }, seconds);
  }
}
