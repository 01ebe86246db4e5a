import { connect } from 'node:net';
import type { LifecycleEvent, ObservedStatus } from './runtime/types.js';

/**
 * SSH readiness of every environment, kept in step with its container: remembers each
 * environment's published SSH port from its applies, probes it while the container runs (an
 * `SSH-` banner on that port), calls `onReady` once per container start, and forgets readiness
 * when the container stops, exits, is OOM-killed or removed. Probes stop after `giveUpMs`.
 */
export class SshWatch {
  private readonly ports = new Map<string, number>();
  private readonly ready = new Set<string>();
  private readonly probing = new Map<string, AbortController>();

  constructor(private readonly options: { address: string; onReady: (envId: string) => void; intervalMs?: number; giveUpMs?: number }) {}

  isReady(envId: string): boolean {
    return this.ready.has(envId);
  }

  /** After a successful apply: watch while the container runs, forget readiness when it does not. */
  applied(status: ObservedStatus, ports: readonly { name: string; hostPort: number }[]): void {
    const ssh = ports.find((p) => p.name === 'ssh');
    if (ssh) this.ports.set(status.envId, ssh.hostPort);
    if (status.state === 'running' && ssh) this.watch(status.envId, ssh.hostPort);
    if (status.state !== 'running') this.reset(status.envId);
  }

  /** A lifecycle event from the engine: a start probes afresh (the SSH port is known from an apply). */
  observe(event: LifecycleEvent): void {
    if (event.kind === 'started') {
      this.reset(event.envId);
      const port = this.ports.get(event.envId);
      if (port) this.watch(event.envId, port);
    } else if (event.kind === 'exited' || event.kind === 'removed' || event.kind === 'oom_killed') {
      this.reset(event.envId);
    }
  }

  stop(): void {
    for (const a of this.probing.values()) a.abort();
    this.probing.clear();
  }

  /** Starts probing `port` for `envId` unless it is already ready or being probed. */
  private watch(envId: string, port: number): void {
    if (this.ready.has(envId) || this.probing.has(envId)) return;
    const abort = new AbortController();
    this.probing.set(envId, abort);
    const deadline = Date.now() + (this.options.giveUpMs ?? 120_000);
    // Fast at first (sshd usually answers within a second), then backing off to one probe per
    // 5 s, so images without an SSH server cost next to nothing.
    let delay = this.options.intervalMs ?? 250;
    const attempt = async () => {
      while (!abort.signal.aborted && Date.now() < deadline) {
        const answered = await hasSshBanner(this.options.address, port, 2000);
        if (abort.signal.aborted) break; // reset meanwhile: a new probe owns this environment
        if (answered) {
          this.probing.delete(envId);
          this.ready.add(envId);
          this.options.onReady(envId);
          return;
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(5000, Math.round(delay * 1.5));
      }
      if (this.probing.get(envId) === abort) this.probing.delete(envId);
    };
    void attempt();
  }

  /** Forgets readiness (the container stopped, restarted or was removed). */
  private reset(envId: string): void {
    this.ready.delete(envId);
    this.probing.get(envId)?.abort();
    this.probing.delete(envId);
  }
}

/** True when something at address:port answers with an SSH protocol banner within `timeoutMs`. */
export function hasSshBanner(address: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    let buf = '';
    const done = (ok: boolean) => {
      socket.destroy();
      clearTimeout(timer);
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.startsWith('SSH-')) done(true);
      else if (buf.length >= 4) done(false);
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}
