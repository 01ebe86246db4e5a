import type { ObservedStatus } from './runtime/types.js';
import { formatSize } from './usage.js';

// The writable-layer limit (REMOTEGPU_ROOTFS_LIMIT), and what one measurement against it means
// (judgeRootfs, pure; rootfs-watch.ts measures and acts on it). What a container writes outside its storage
// volume and bind mounts lives on Docker's disk, not in the environment's sized volume: in its
// writable layer, and, after a recreate (a GPU change, a dataset mount, a new spec), in the layers
// the recreate committed into the environment's private image, which the new container runs on.
// The agent measures both (usage.ts measureRootfs: Docker's SizeRw, costly, plus the committed
// layers; once a minute per container, one container at a time, within 10 s of a start, and every
// tick during a grace period) and:
// - warns once per crossing when it passes 90% of the limit (a `rootfs_warning` event);
// - stops the container when it reaches the limit (a `rootfs_limit` event; the reason is reported
//   with the environment's status until it runs again, so the controller shows it);
// - gives a container that is already over the limit at its first measurement after a start a
//   grace period (5 minutes by default) to delete files, then stops it again if still over. The
//   grace is for deleting: a layer that grows past what it held when the grace began is stopped
//   at once. The first time, it may grow by 1% of the limit; once the environment was over the
//   limit in an earlier run (stopped at the limit, or stopped by its user during a grace period),
//   by at most 16 MiB, what a start itself writes. So start, write, stop, start again gains no
//   more than what is written between two measurements.
// With limit 0 it only measures.

/** Share of the limit at which the warning is given; it is given again after the layer fell below REARM_SHARE. */
export const WARN_SHARE = 0.9;
const REARM_SHARE = 0.85;
/** What a layer over the limit may grow by during a grace period: this share of the limit... */
export const GRACE_SLACK_SHARE = 0.01;
/**
 * ...and at most this much when an earlier run of the environment was over the limit too (it was
 * stopped at the limit, or stopped during its grace period): its grace is for deleting files, this
 * is only room for what starting it writes (pid files, shell history, the directories a deletion
 * copies up).
 */
export const AFTER_STOP_SLACK_BYTES = 16 * 1024 ** 2;

/** What the judge remembers of one container run (a container id and its start time). */
export interface RootfsTrack {
  readonly run: string;
  /** The 90% warning (or the grace notice) was given for the current crossing. */
  readonly warned: boolean;
  /** The run started over the limit: it may stay over until this time (ms since the epoch); 0: no grace. */
  readonly graceUntilMs: number;
  /** During a grace period, the most the layer may use: more stops the container at once (0: no grace). */
  readonly graceCapBytes: number;
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

/** One measurement of a running container, as the judge needs it. */
export interface RootfsReading {
  readonly run: string;
  /** The writable layer with the committed layers (RootfsMeasurement.usedBytes). */
  readonly usedBytes: number;
  /** The part of usedBytes a recreate committed (deleting those files does not free it); default 0. */
  readonly committedBytes?: number;
  readonly dataPath: string;
  readonly nowMs: number;
  /**
   * An earlier measurement of the environment (any run) was over the limit, and none since was
   * under it: RootfsJudgement.overLimit of its previous judgement, kept across agent restarts.
   */
  readonly overBefore?: boolean;
}

export interface RootfsJudgement {
  /** Replaces the environment's track. */
  readonly track: RootfsTrack;
  readonly action: RootfsAction;
  /** What to remember for RootfsReading.overBefore: set over the limit, cleared under it. */
  readonly overLimit: boolean;
}

/** Identifies one run of a container: a restart (or a recreate) is a new run. */
export function runOf(s: Pick<ObservedStatus, 'containerId' | 'startedAtMs'>): string {
  return `${s.containerId}@${s.startedAtMs}`;
}

function outside(dataPath: string): string {
  return dataPath ? `files outside ${dataPath}` : 'files outside the storage volume';
}

/** The sentence on committed layers, when the container runs on some. */
function committedNote(committedBytes: number): string {
  return committedBytes > 0 ? ` ${formatSize(committedBytes)} of it was kept by a recreate in the environment's image, which deleting those files does not free.` : '';
}

function minutes(ms: number): string {
  const m = Math.max(1, Math.round(ms / 60_000));
  return m === 1 ? '1 minute' : `${m} minutes`;
}

/** The reason the agent gives for a stop at the limit (the controller shows it after "stopped: "). */
export function limitReason(usedBytes: number, limitBytes: number): string {
  return `writable layer ${formatSize(usedBytes)} exceeded the ${formatSize(limitBytes)} limit (REMOTEGPU_ROOTFS_LIMIT)`;
}

/** What a layer over the limit may grow by during its grace period. */
export function graceSlackBytes(limitBytes: number, overBefore: boolean): number {
  const share = Math.floor(GRACE_SLACK_SHARE * limitBytes);
  return overBefore ? Math.min(share, AFTER_STOP_SLACK_BYTES) : share;
}

/**
 * What one measurement of a running container's writable layer means. Pure. `prev` is the track of
 * the previous measurement of this environment (any run); the result's track replaces it.
 */
export function judgeRootfs(prev: RootfsTrack | undefined, m: RootfsReading, policy: RootfsPolicy): RootfsJudgement {
  const first = prev === undefined || prev.run !== m.run;
  const base: RootfsTrack = first ? { run: m.run, warned: false, graceUntilMs: 0, graceCapBytes: 0 } : prev;
  const limit = policy.limitBytes;
  if (!(limit > 0)) return { track: base, action: { kind: 'none' }, overLimit: false };
  const used = formatSize(m.usedBytes);
  const of = formatSize(limit);
  const note = committedNote(m.committedBytes ?? 0);
  if (m.usedBytes >= limit) {
    if (first && policy.graceMs > 0) {
      const cap = m.usedBytes + graceSlackBytes(limit, m.overBefore ?? false);
      const message =
        `Writable layer uses ${used}, over its ${of} limit (REMOTEGPU_ROOTFS_LIMIT); ${outside(m.dataPath)} count against it. ` +
        `Delete some within ${minutes(policy.graceMs)} or the environment will be stopped again; it is stopped at once if the layer grows past ${formatSize(cap)}.${note}`;
      return { track: { run: m.run, warned: true, graceUntilMs: m.nowMs + policy.graceMs, graceCapBytes: cap }, action: { kind: 'grace', message }, overLimit: true };
    }
    const inGrace = base.graceUntilMs > 0;
    const grew = inGrace && m.usedBytes > base.graceCapBytes;
    if (inGrace && !grew && base.graceUntilMs > m.nowMs) return { track: base, action: { kind: 'none' }, overLimit: true };
    const reason = limitReason(m.usedBytes, limit);
    const why = grew ? `${reason}, and grew past ${formatSize(base.graceCapBytes)} during its grace period` : reason;
    const message =
      `Stopping the environment: ${why}; ${outside(m.dataPath)} count against it.${note} ` +
      `Start it again and delete some within ${minutes(policy.graceMs)}: until it is under the limit, it is stopped at once if the layer grows`;
    return { track: { ...base, warned: true, graceUntilMs: 0, graceCapBytes: 0 }, action: { kind: 'stop', reason, message }, overLimit: true };
  }
  // Under the limit: a grace period is spent once the layer got under it, and an earlier run over it is forgotten.
  const track = { ...base, graceUntilMs: 0, graceCapBytes: 0 };
  if (m.usedBytes >= WARN_SHARE * limit) {
    if (base.warned) return { track, action: { kind: 'none' }, overLimit: false };
    const message = `Writable layer uses ${used} of its ${of} limit (REMOTEGPU_ROOTFS_LIMIT); ${outside(m.dataPath)} count against it.${note} The environment will be stopped at the limit`;
    return { track: { ...track, warned: true }, action: { kind: 'warn', message }, overLimit: false };
  }
  return { track: { ...track, warned: base.warned && m.usedBytes >= REARM_SHARE * limit }, action: { kind: 'none' }, overLimit: false };
}
