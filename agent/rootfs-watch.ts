import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '../common/logger.js';
import { judgeRootfs, runOf, type RootfsTrack } from './rootfs-judge.js';
import type { ContainerRuntime, LifecycleEvent, ObservedStatus } from './runtime/types.js';
import type { RootfsMeasurement, RootfsSource } from './usage.js';

// The loop that applies the writable-layer limit (REMOTEGPU_ROOTFS_LIMIT; what it means for one
// measurement is rootfs-judge.ts): it measures the containers, caches the figures for the
// reporter, sends the judge's warnings and stops, and keeps which environments were over the limit
// (and why the agent stopped them) across agent restarts.

export const DEFAULT_ROOTFS_INTERVAL_MS = 60_000;
export const DEFAULT_ROOTFS_GRACE_MS = 5 * 60_000;
const DEFAULT_ROOTFS_TICK_MS = 10_000;

/**
 * An environment seen over the limit, remembered (and persisted) until its layer is measured
 * under the limit or the environment is gone: its next runs get a grace period only to delete
 * files. With the reason of the agent's stop at the limit, reported until it runs again.
 */
interface OverLimitMark {
  /** Why the agent stopped the container ('' when it did not, or once the environment ran again). */
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
   * that just started, or that is in a grace period, is measured within this, a running one every
   * interval.
   */
  readonly tickMs?: number;
  /** How long a container started over the limit may stay over it (default 5 minutes). */
  readonly graceMs?: number;
  /**
   * The agent's data directory: the environments seen over the limit, with the reasons of the
   * agent's stops, are kept in rootfs-stops.json there across agent restarts.
   */
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
 * once per run; a container that just started, or is in a grace period, within a tick), caches the
 * figures for the reporter, and applies the limit (judgeRootfs). Each tick lists the containers (a
 * plain inspect each, as a report does) and measures only those due, one at a time.
 */
export class RootfsWatch implements RootfsSource {
  private readonly sizes = new Map<string, { run: string; usedBytes: number; atMs: number }>();
  private readonly tracks = new Map<string, RootfsTrack>();
  /** By env id: the environment was over the limit (the reason of the agent's stop, if it stopped it). */
  private marks = new Map<string, OverLimitMark>();
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> | undefined;
  /** The last listing the reporter made (observe()). */
  private observed: { statuses: readonly ObservedStatus[]; atMs: number } | undefined;
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

  /** Loads the remembered marks and starts measuring (the first pass at once). */
  async start(): Promise<void> {
    await this.load();
    this.schedule(0);
  }

  /** Loads the marks and stop reasons a previous agent run kept (start does it; tests call it alone). */
  async load(): Promise<void> {
    this.marks = await loadMarks(this.file);
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
    return this.marks.get(envId)?.reason || undefined;
  }

  /**
   * The reporter's listing of the containers (it lists them for every report): a pass within a
   * tick of it uses that instead of listing them again.
   */
  observe(statuses: readonly ObservedStatus[]): void {
    this.observed = { statuses, atMs: this.now() };
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
    let statuses: readonly ObservedStatus[];
    try {
      const seen = this.observed;
      statuses = seen && this.now() - seen.atMs < this.tickMs ? seen.statuses : await this.o.runtime.list();
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
      const track = this.tracks.get(s.envId);
      // During a grace period every pass measures: a layer that grows is stopped within a tick.
      const every = track?.run === run && track.graceUntilMs > 0 ? this.tickMs : this.intervalMs;
      const due = !last || last.run !== run || (s.state === 'running' && this.now() - last.atMs >= every * 0.9);
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

  /**
   * Forgets environments that are gone, and the stop reasons of environments that run again since
   * (the stop itself is remembered until the layer is measured under the limit).
   */
  private async forget(statuses: readonly ObservedStatus[]): Promise<void> {
    const present = new Map(statuses.filter((s) => s.state !== 'absent').map((s) => [s.envId, s]));
    for (const envId of [...this.sizes.keys()]) if (!present.has(envId)) this.sizes.delete(envId);
    for (const envId of [...this.tracks.keys()]) if (!present.has(envId)) this.tracks.delete(envId);
    let changed = false;
    for (const [envId, record] of [...this.marks]) {
      const s = present.get(envId);
      if (!s) {
        this.marks.delete(envId);
        changed = true;
      } else if (record.reason && s.state === 'running' && s.startedAtMs > record.atMs) {
        this.marks.set(envId, { ...record, reason: '' });
        changed = true;
      }
    }
    if (changed) await this.save();
  }

  private async judge(s: ObservedStatus, run: string, m: RootfsMeasurement, nowMs: number): Promise<void> {
    const reading = { run, usedBytes: m.usedBytes, committedBytes: m.committedBytes, dataPath: m.dataPath, nowMs, overBefore: this.marks.has(s.envId) };
    const { track, action, overLimit } = judgeRootfs(this.tracks.get(s.envId), reading, { limitBytes: this.o.limitBytes, graceMs: this.graceMs });
    this.tracks.set(s.envId, track);
    // A stop keeps its reason with the mark, saved before the stop, so no report shows the exited
    // container without it.
    if (action.kind === 'stop') this.marks.set(s.envId, { reason: action.reason, atMs: nowMs });
    else if (overLimit && !this.marks.has(s.envId)) this.marks.set(s.envId, { reason: '', atMs: nowMs });
    else if (!overLimit) this.marks.delete(s.envId);
    if (action.kind === 'stop' || overLimit !== reading.overBefore) await this.save();
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
      await writeFile(tmp, JSON.stringify(Object.fromEntries(this.marks)), { mode: 0o600 });
      await rename(tmp, this.file);
    } catch (err) {
      this.o.logger.warn({ err, file: this.file }, 'could not save the writable-layer marks and stop reasons; they are kept in memory');
    }
  }
}

async function loadMarks(file: string): Promise<Map<string, OverLimitMark>> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Record<string, Partial<OverLimitMark>>;
    const marks = new Map<string, OverLimitMark>();
    for (const [envId, r] of Object.entries(parsed)) {
      if (typeof r?.reason === 'string' && typeof r.atMs === 'number') marks.set(envId, { reason: r.reason, atMs: r.atMs });
    }
    return marks;
  } catch {
    return new Map();
  }
}
