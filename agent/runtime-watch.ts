import type { Logger } from '../common/logger.js';
import type { ContainerRuntime, ObservedStatus } from './runtime/types.js';

/** While the container runtime does not answer, it is asked again this often (locally). */
export const RUNTIME_PROBE_MS = 1_000;
/**
 * After the runtime answers again, this many reports go out RUNTIME_PROBE_MS apart instead of an
 * interval apart: the controller brings an environment back from `error` after two reports in a
 * row saw its container running (controller/environments/observer.ts), which then takes seconds,
 * not two report intervals.
 */
const RECOVERY_REPORTS = 2;
/**
 * A listing that takes longer counts as "does not answer" (a hung engine would otherwise hold the
 * report back until the controller takes the host for gone); the listing itself goes on.
 */
export const LIST_TIMEOUT_MS = 15_000;

/**
 * The reporter's view of the container runtime (Docker): lists the containers for a report, or
 * says the runtime does not answer. Meanwhile it asks the runtime every RUNTIME_PROBE_MS and calls
 * `onBack` on the first answer. Logs one line when the runtime stops answering and one when it
 * answers again, not one per report.
 */
export class RuntimeWatch {
  /** Why the runtime did not answer the last listing; undefined while it answers. */
  private down: string | undefined;
  private probe: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Reports still to send RUNTIME_PROBE_MS apart since the runtime answered again. */
  private quick = 0;

  constructor(
    private readonly runtime: ContainerRuntime,
    private readonly logger: Logger,
    private readonly onBack: () => void,
  ) {}

  /** The containers, or `{ error }` when the runtime does not answer. */
  async list(hostId: string | undefined): Promise<{ statuses: ObservedStatus[] } | { error: string }> {
    try {
      const statuses = await this.listInTime();
      if (this.down !== undefined) {
        this.down = undefined;
        this.quick = RECOVERY_REPORTS;
        this.logger.info({ hostId }, 'container runtime (Docker) answers again; reporting containers again');
      }
      return { statuses };
    } catch (err) {
      const reason = (err instanceof Error ? err.message : String(err)) || 'container runtime unavailable';
      if (this.down === undefined) {
        this.logger.error(
          { hostId, reason },
          'container runtime (Docker) does not answer: reporting the host without container observations until it does (environments keep their last known state)',
        );
      }
      this.down = reason;
      this.probeSoon();
      return { error: reason };
    }
  }

  /** The pause before the next regular report: RUNTIME_PROBE_MS for a few reports after the runtime answered again. */
  nextReportMs(intervalMs: number): number {
    if (this.quick <= 0 || this.down !== undefined) return intervalMs;
    this.quick--;
    return Math.min(intervalMs, RUNTIME_PROBE_MS);
  }

  /** The runtime's listing, or a RuntimeError-like failure after LIST_TIMEOUT_MS. */
  private listInTime(): Promise<ObservedStatus[]> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Docker engine did not answer a container listing within ${LIST_TIMEOUT_MS / 1000} s`)), LIST_TIMEOUT_MS);
      timer.unref();
    });
    return Promise.race([this.runtime.list(), late]).finally(() => clearTimeout(timer));
  }

  stop(): void {
    this.stopped = true;
    if (this.probe) clearTimeout(this.probe);
  }

  private probeSoon(): void {
    if (this.probe || this.stopped) return;
    this.probe = setTimeout(() => {
      void this.listInTime().then(
        () => {
          this.probe = undefined;
          if (!this.stopped) this.onBack();
        },
        () => {
          this.probe = undefined;
          if (this.down !== undefined) this.probeSoon();
        },
      );
    }, RUNTIME_PROBE_MS);
    this.probe.unref();
  }
}
