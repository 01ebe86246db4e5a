import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '../common/logger.js';
import type { ContainerRuntime, LifecycleEvent, ObservedStatus } from './runtime/types.js';
import { formatSize, type RootfsMeasurement, type RootfsSource } from './usage.js';

// The writable-layer limit (REMOTEGPU_ROOTFS_LIMIT). A container's writable layer (files written
// outside its storage volume and bind mounts) lives on Docker's disk, not in the environment's
// sized volume, so the agent measures it (Docker's SizeRw, costly: once a minute per container,
// one container at a time, and within 10 s of a start) and:
// - warns once per crossing when it passes 90% of the limit (a `rootfs_warning` event);
// - stops the container when it reaches the limit (a `rootfs_limit` event; the reason is reported
//   with the environment's status until it runs again, so the controller shows it);
// - gives a container that is already over the limit at its first measurement after a start a
//   grace period (5 minutes by default) to delete files, then stops it again if still over.
// With limit 0 it only measures.

/** Share of the limit at which the warning is given; it is given again after the layer fell below REARM_SHARE. */
export const WARN_SHARE = 0.9;
const REARM_SHARE = 0.85;

export const DEFAULT_ROOTFS_INTERVAL_MS = 60_000;
export const DEFAULT_ROOTFS_GRACE_MS = 5 * 60_000;
const DEFAULT_ROOTFS_TICK_MS = 10_000;

/** What the judge remembers of one container run (a container id and its start time). */
export interface RootfsTrack {
  readonly run: string;
  /** The 90% warning (or the grace notice) was given for the current crossing. */
  readonly warned: boolean;
  /** The run started over the limit: it may stay over until this time (ms since the epoch); 0: no grace. */
  readonly graceUntilMs: number;
}

export type RootfsAction =
  | { readonly kind: 'none' }
  | { readonly kind: 'warn'; readonly message: string }
  | { readonly kind: 'grace'; readonly message: string }
  | { readonly kind: 'stop'; readonly reason: string; readonly message: string };

export interface RootfsPolicy {
  /** REMOTEGPU_ROOTFS_LIMIT in bytes; 0: no limit. */
  readonly limitBytes: number;
  readonly graceMs: number;
}

/** Identifies one run of a container: a restart (or a recreate) is a new run. */
export function runOf(s: Pick<ObservedStatus, 'containerId' | 'startedAtMs'>): string {
  return `${s.containerId}@${s.startedAtMs}`;
}

function outside(dataPath: string): string {
  return dataPath ? `files outside ${dataPath}` : 'files outside the storage volume';
}

function minutes(ms: number): string {
  const m = Math.max(1, Math.round(ms / 60_000));
  return m === 1 ? '1 minute' : `${m} minutes`;
}

/** The reason the agent gives for a stop at the limit (the controller shows it after "stopped: "). */
export function limitReason(usedBytes: number, limitBytes: number): string {
  return `writable layer ${formatSize(usedBytes)} exceeded the ${formatSize(limitBytes)} limit (REMOTEGPU_ROOTFS_LIMIT)`;
}

/**
 * What one measurement of a running container's writable layer means. Pure. `prev` is the track of
 * the previous measurement of this environment (any run); the result's track replaces it.
 */
export function judgeRootfs(
  prev: RootfsTrack | undefined,
  m: { readonly run: string; readonly usedBytes: number; readonly dataPath: string; readonly nowMs: number },
  policy: RootfsPolicy,
): { track: RootfsTrack; action: RootfsAction } {
  const first = prev === undefined || prev.run !== m.run;
  const base: RootfsTrack = first ? { run: m.run, warned: false, graceUntilMs: 0 } : prev;
  const limit = policy.limitBytes;
  if (!(limit > 0)) return { track: base, action: { kind: 'none' } };
  const used = formatSize(m.usedBytes);
  const of = formatSize(limit);
  if (m.usedBytes >= limit) {
    if (first && policy.graceMs > 0) {
      const message =
        `Writable layer uses ${used}, over its ${of} limit (REMOTEGPU_ROOTFS_LIMIT); ${outside(m.dataPath)} count against it. ` +
        `Delete some within ${minutes(policy.graceMs)} or the environment will be stopped again`;
      return { track: { run: m.run, warned: true, graceUntilMs: m.nowMs + policy.graceMs }, action: { kind: 'grace', message } };
    }
    if (base.graceUntilMs > m.nowMs) return { track: base, action: { kind: 'none' } };
    const reason = limitReason(m.usedBytes, limit);
    const message = `Stopping the environment: ${reason}; ${outside(m.dataPath)} count against it. Start it again and delete some within ${minutes(policy.graceMs)}`;
    return { track: { ...base, warned: true, graceUntilMs: 0 }, action: { kind: 'stop', reason, message } };
  }
  // Under the limit: a grace period is spent once the layer got under it.
  const track = { ...base, graceUntilMs: 0 };
  if (m.usedBytes >= WARN_SHARE * limit) {
    if (base.warned) return { track, action: { kind: 'none' } };
    const message = `Writable layer uses ${used} of its ${of} limit (REMOTEGPU_ROOTFS_LIMIT); ${outside(m.dataPath)} count against it. The environment will be stopped at the limit`;
    return { track: { ...track, warned: true }, action: { kind: 'warn', message } };
  }
  return { track: { ...track, warned: base.warned && m.usedBytes >= REARM_SHARE * limit }, action: { kind: 'none' } };
}

/** A stop the agent made, as remembered (and persisted) until the environment runs again. */
interface StopRecord {
  readonly reason: string;
  readonly atMs: number;
}

export interface RootfsWatchOptions {
  readonly runtime: Pick<ContainerRuntime, 'list' | 'stop'>;
  /** Measures a container's writable layer (measureRootfs over the agent's Docker engine). */
  readonly measure: (containerId: string, envId: string) => Promise<RootfsMeasurement>;
  readonly limitBytes: number;
  /** How often each running container is measured (default 60 s). */
  readonly intervalMs?: number;
  /**
   * How often the watch looks for containers due (default the interval, at most 10 s): a container
   * that just started is measured within this, a running one every interval.
   */
  readonly tickMs?: number;
  /** How long a container started over the limit may stay over it (default 5 minutes). */
  readonly graceMs?: number;
  /** The agent's data directory: stop reasons are kept in rootfs-stops.json there across agent restarts. */
  readonly stateDir: string;
  /** A warning or a stop to send to the controller. */
  readonly onEvent: (event: LifecycleEvent) => void;
  readonly logger: Logger;
  readonly now?: () => number;
}

/** Seconds a container gets to stop at the limit before it is killed. */
const STOP_TIMEOUT_S = 10;

/**
 * Measures every container's writable layer on a slow cadence (running ones every interval, others
 * once per run; a container that just started within a tick), caches the figures for the reporter,
 * and applies the limit (judgeRootfs). Each tick lists the containers (a plain inspect each, as a
 * report does) and measures only those due, one at a time.
 */
export class RootfsWatch implements RootfsSource {
  private readonly sizes = new Map<string, { run: string; usedBytes: number; atMs: number }>();
  private readonly tracks = new Map<string, RootfsTrack>();
  private stops = new Map<string, StopRecord>();
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> | undefined;
  private stopped = false;
  private readonly intervalMs: number;
  private readonly tickMs: number;
  private readonly graceMs: number;
  private readonly now: () => number;
  private readonly file: string;

  constructor(private readonly o: RootfsWatchOptions) {
    this.intervalMs = o.intervalMs ?? DEFAULT_ROOTFS_INTERVAL_MS;
    this.tickMs = o.tickMs ?? Math.min(this.intervalMs, DEFAULT_ROOTFS_TICK_MS);
    this.graceMs = o.graceMs ?? DEFAULT_ROOTFS_GRACE_MS;
    this.now = o.now ?? Date.now;
    this.file = join(o.stateDir, 'rootfs-stops.json');
  }

  /** Loads the remembered stops and starts measuring (the first pass at once). */
  async start(): Promise<void> {
    await this.load();
    this.schedule(0);
  }

  /** Loads the stop reasons a previous agent run kept (start does it; tests call it alone). */
  async load(): Promise<void> {
    this.stops = await loadStops(this.file);
  }

  /** Ends the loop; resolves once a pass in progress finished. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.pass;
  }

  rootfsUsedBytes(envId: string): number | undefined {
    return this.sizes.get(envId)?.usedBytes;
  }

  stopReason(envId: string): string | undefined {
    return this.stops.get(envId)?.reason;
  }

  /** One pass over every managed environment (the loop calls it; tests call it directly). */
  runOnce(): Promise<void> {
    this.pass ??= this.check().finally(() => (this.pass = undefined));
    return this.pass;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.runOnce().finally(() => this.schedule(this.tickMs));
    }, delayMs);
  }

  private async check(): Promise<void> {
    let statuses: ObservedStatus[];
    try {
      statuses = await this.o.runtime.list();
    } catch (err) {
      this.o.logger.warn({ err }, 'writable-layer watch: listing containers failed; retrying at the next pass');
      return;
    }
    await this.forget(statuses);
    for (const s of statuses) {
      if (this.stopped) return;
      if (s.state === 'absent' || !s.containerId) continue;
      const run = runOf(s);
      const last = this.sizes.get(s.envId);
      const due = s.state === 'running' ? !last || last.run !== run || this.now() - last.atMs >= this.intervalMs * 0.9 : !last || last.run !== run;
      if (!due) continue;
      let m: RootfsMeasurement;
      try {
        m = await this.o.measure(s.containerId, s.envId);
      } catch (err) {
        this.o.logger.debug({ err, envId: s.envId }, 'writable-layer measurement failed (container gone?)');
        continue;
      }
      const nowMs = this.now();
      this.sizes.set(s.envId, { run, usedBytes: m.usedBytes, atMs: nowMs });
      if (s.state === 'running') await this.judge(s, run, m, nowMs);
    }
  }

  /** Forgets environments that are gone, and stop reasons of environments that run again since. */
  private async forget(statuses: readonly ObservedStatus[]): Promise<void> {
    const present = new Map(statuses.filter((s) => s.state !== 'absent').map((s) => [s.envId, s]));
    for (const envId of [...this.sizes.keys()]) if (!present.has(envId)) this.sizes.delete(envId);
    for (const envId of [...this.tracks.keys()]) if (!present.has(envId)) this.tracks.delete(envId);
    let changed = false;
    for (const [envId, record] of [...this.stops]) {
      const s = present.get(envId);
      if (!s || (s.state === 'running' && s.startedAtMs > record.atMs)) {
        this.stops.delete(envId);
        changed = true;
      }
    }
    if (changed) await this.save();
  }

  private async judge(s: ObservedStatus, run: string, m: RootfsMeasurement, nowMs: number): Promise<void> {
    const { track, action } = judgeRootfs(this.tracks.get(s.envId), { run, usedBytes: m.usedBytes, dataPath: m.dataPath, nowMs }, { limitBytes: this.o.limitBytes, graceMs: this.graceMs });
    this.tracks.set(s.envId, track);
    const event = (kind: LifecycleEvent['kind'], message: string) => this.o.onEvent({ envId: s.envId, atMs: nowMs, kind, message });
    switch (action.kind) {
      case 'none':
        return;
      case 'warn':
      case 'grace':
        this.o.logger.warn({ envId: s.envId, rootfsUsedBytes: m.usedBytes, limitBytes: this.o.limitBytes }, action.message);
        event('rootfs_warning', action.message);
        return;
      case 'stop':
        this.o.logger.warn({ envId: s.envId, rootfsUsedBytes: m.usedBytes, limitBytes: this.o.limitBytes }, action.message);
        // Remembered before the stop, so no report shows the exited container without its reason.
        this.stops.set(s.envId, { reason: action.reason, atMs: nowMs });
        await this.save();
        event('rootfs_limit', action.message);
        try {
          await this.o.runtime.stop(s.envId, STOP_TIMEOUT_S);
        } catch (err) {
          // The track stays: the next measurement of this run, still over, stops it again (no grace).
          this.o.logger.error({ err, envId: s.envId }, 'stopping a container over its writable-layer limit failed; retrying at the next measurement');
        }
        return;
    }
  }

  private async save(): Promise<void> {
    try {
      await mkdir(dirname(this.file), { recursive: true });
      const tmp = `${this.file}.tmp`;
      await writeFile(tmp, JSON.stringify(Object.fromEntries(this.stops)), { mode: 0o600 });
      await rename(tmp, this.file);
    } catch (err) {
      this.o.logger.warn({ err, file: this.file }, 'could not save the writable-layer stop reasons; they are kept in memory');
    }
  }
}

async function loadStops(file: string): Promise<Map<string, StopRecord>> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Record<string, Partial<StopRecord>>;
    const stops = new Map<string, StopRecord>();
    for (const [envId, r] of Object.entries(parsed)) {
      if (typeof r?.reason === 'string' && typeof r.atMs === 'number') stops.set(envId, { reason: r.reason, atMs: r.atMs });
    }
    return stops;
  } catch {
    return new Map();
  }
}
