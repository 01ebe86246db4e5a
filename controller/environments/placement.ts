import type { Db, Trx } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import { afterPlacement, schedule, type Candidate, type HostSnapshot, type PlacementRequest, type ScheduleResult } from '../scheduler/index.js';
import { snapshotForScheduling } from '../hosts/scheduling-snapshot.js';
import type { CapacityIndex } from './capacity-index.js';
import { clearReserved, setPlacement } from './environment-writes.js';
import { lockFirstFree, lockPortSpace, releasePorts, reservePorts, type PortRanges, type PortSpace } from './port-space.js';

export { movePortOff, type PortMove, type PortRanges } from './port-space.js';

/** What placement works with: the database, the port ranges and this process's capacity index (if any). */
export interface PlacementContext {
  readonly db: Db;
  readonly ports: PortRanges;
  /** Picks candidates without a whole-cluster read per request; without it, every round reads all hosts. */
  readonly index?: CapacityIndex | undefined;
}

export interface Reservation {
  readonly hostId: string;
  readonly gpuUuids: readonly string[];
  readonly sshPort: number;
  readonly jupyterPort: number | null;
}

/** What one placement needs; the hooks run inside each candidate host's transaction, once the host is locked. */
export interface PlacementJob {
  readonly envId: string;
  /** What must fit on the host now (a start on its own host: only what its volume grows by). */
  readonly request: PlacementRequest;
  /**
   * The storage the environment holds on the host once placed, when it is not `request.storageBytes`:
   * a start on its own host asks the fit check only for the growth, but holds its whole new size.
   */
  readonly reservedStorageBytes?: number;
  readonly wantJupyter: boolean;
  /** Ports the environment keeps (a start on its own host). */
  readonly existingPorts?: { ssh: number | null; jupyter: number | null };
  /** Only this host (a start: the environment's data lives there), waiting for its lock; no scheduling pass first. */
  readonly onlyHostId?: string | undefined;
  /** The hosts to schedule the first round on instead of the index (the queue's one read per pass). */
  readonly snapshot?: readonly HostSnapshot[];
  /** Rounds before giving up; every round after the first reads every host afresh. */
  readonly rounds?: number;
  /** Once the host is locked, before its room is checked: lock or change rows (a start releases what it held); false gives up on this job. */
  before?(trx: Trx, hostId: string): Promise<boolean>;
  /** Once the host is known to have room, before reserving: the checks and the insert of a new row (a create). */
  admit?(trx: Trx, hostId: string): Promise<void>;
  /** After reserving, in the same transaction: the status change and its event. */
  after(trx: Trx, reservation: Reservation): Promise<void>;
  /** A unique key was violated on a candidate (may throw to stop, e.g. a duplicate request). */
  onUniqueViolation?(): Promise<void>;
}

export type PlacementResult = { readonly ok: true; readonly reservation: Reservation } | { readonly ok: false; readonly message: string };

const NO_HOST_YET = 'no host is registered yet; install an agent on a GPU server (see README)';
/** Concurrent requests start on a random one of the best this many candidates (then the rest in rank order). */
const SPREAD = 8;
/** Candidates offered to one `FOR UPDATE SKIP LOCKED` pick. */
const PICK = 16;
/** Hosts found locked that a round then waits for, one by one, before it gives up. */
const WAIT_FOR = 8;

type Outcome = Reservation | 'gone' | { full: string } | { busy: string[] };

/**
 * The one placement loop, for create, start and the queue. A round ranks candidates (on the
 * capacity index in the first round, on a fresh read of every host in later ones and whenever the
 * index sees no room, so a request is refused only on a fresh read), then tries them, best first
 * after shuffling the best few (concurrent requests spread instead of queueing on one host): each
 * try is one transaction that locks the first of the candidates no other transaction holds
 * (`SKIP LOCKED`), checks its room from the database, and reserves. Hosts found locked are waited
 * for at the end of the round. Gives up after `rounds` rounds with the scheduler's reason, or when
 * `before` says the job is gone.
 */
export async function placeOnAnyHost(ctx: PlacementContext, job: PlacementJob): Promise<PlacementResult> {
  let message = NO_HOST_YET;
  for (let round = 0; round < (job.rounds ?? 1); round++) {
    if (job.onlyHostId) {
      const outcome = await attempt(ctx, job, [job.onlyHostId], 'wait');
      if (outcome === 'gone') return { ok: false, message: 'the environment changed meanwhile' };
      if (isReservation(outcome)) return { ok: true, reservation: outcome };
      message = `host ${job.onlyHostId} has no room now`;
      continue;
    }
    const result = await rank(ctx, job, round);
    if (!result.ok) return { ok: false, message: result.message };
    const order = spread(result.candidates);
    // The first try's host and GPUs count as taken for this process's other requests meanwhile.
    const release = ctx.index?.claim(order[0]!.hostId, job.request, order[0]!.gpuUuids);
    const outcome = await tryCandidates(ctx, job, order.map((c) => c.hostId), round === 0 && !job.snapshot).finally(release);
    if (outcome === 'gone') return { ok: false, message: 'the environment changed meanwhile' };
    if (outcome) return { ok: true, reservation: outcome };
    message = 'every host that fit a moment ago was taken by concurrent requests';
  }
  return { ok: false, message };
}

/** Candidates of a round: the queue's snapshot or the index first, else (and on a miss) a fresh read. */
async function rank(ctx: PlacementContext, job: PlacementJob, round: number): Promise<ScheduleResult> {
  if (round === 0 && job.snapshot) return schedule(job.request, job.snapshot);
  const since = Date.now();
  if (round === 0 && ctx.index) {
    const quick = await ctx.index.rank(job.request);
    if (quick.ok) return quick;
  }
  return schedule(job.request, ctx.index ? await ctx.index.refresh(since) : await snapshotForScheduling(ctx.db));
}

/** The candidates in the order to try: a random one of the best `SPREAD` first, then the rest by rank. */
function spread(candidates: readonly Candidate[]): Candidate[] {
  const first = Math.floor(Math.random() * Math.min(SPREAD, candidates.length));
  return [candidates[first]!, ...candidates.slice(0, first), ...candidates.slice(first + 1)];
}

/** Tries candidates without waiting for a locked host, then waits for some of those found locked. */
async function tryCandidates(ctx: PlacementContext, job: PlacementJob, hostIds: string[], fromIndex: boolean): Promise<Reservation | 'gone' | null> {
  let pending = hostIds;
  const locked: string[] = [];
  while (pending.length > 0) {
    // Candidates ranked on the index: hosts found full meanwhile (by this process's attempts, whose
    // outcome every entry gets at once) are not tried. Candidates of a fresh read all are.
    if (fromIndex && ctx.index) pending = pending.filter((id) => ctx.index!.fits(id, job.request));
    if (pending.length === 0) break;
    const outcome = await attempt(ctx, job, pending.slice(0, PICK), 'skip');
    if (outcome === 'gone' || isReservation(outcome)) return outcome;
    const done = new Set('busy' in outcome ? outcome.busy : [outcome.full]);
    if ('busy' in outcome) locked.push(...outcome.busy);
    pending = pending.filter((id) => !done.has(id));
  }
  for (const hostId of locked.slice(0, WAIT_FOR)) {
    const outcome = await attempt(ctx, job, [hostId], 'wait');
    if (outcome === 'gone' || isReservation(outcome)) return outcome;
  }
  return null;
}

function isReservation(o: Outcome): o is Reservation {
  return typeof o === 'object' && 'gpuUuids' in o;
}

/**
 * One transaction on one host: locks it (`skip`: the first of `hostIds` nobody holds; `wait`: the
 * one host, waiting), runs `before`, checks its room again from the database, runs `admit`,
 * reserves, runs `after`. Whatever it read of the host goes into the index.
 */
async function attempt(ctx: PlacementContext, job: PlacementJob, hostIds: readonly string[], mode: 'skip' | 'wait'): Promise<Outcome> {
  let seen: { hostId: string; host: HostSnapshot | undefined } | undefined;
  let placed: Reservation | undefined;
  let unclaim: (() => void) | undefined;
  try {
    const outcome = await ctx.db.transaction().execute(async (trx): Promise<Outcome> => {
      const space = mode === 'skip' ? await lockFirstFree(trx, hostIds) : await lockPortSpace(trx, hostIds[0]!);
      if (space === 'none') return { busy: [...hostIds] };
      if (space === null) {
        seen = { hostId: hostIds[0]!, host: undefined };
        return { full: hostIds[0]! };
      }
      if ('siblingLocked' in space) return { busy: [space.siblingLocked] };
      if (job.before && !(await job.before(trx, space.hostId))) return 'gone';
      const [host] = await snapshotForScheduling(trx, { hostIds: [space.hostId] });
      seen = { hostId: space.hostId, host };
      const fit = schedule(job.request, host ? [host] : []);
      if (!fit.ok) throw new HostFull(space.hostId);
      const gpuUuids = fit.candidates[0]!.gpuUuids;
      unclaim = ctx.index?.claim(space.hostId, job.request, gpuUuids);
      await job.admit?.(trx, space.hostId);
      const reservation = await reserveOnHost(trx, { ...job, space, gpuUuids, ports: ctx.ports });
      if (!reservation) throw new HostFull(space.hostId);
      await job.after(trx, reservation);
      return reservation;
    });
    if (isReservation(outcome)) placed = outcome;
    return outcome;
  } catch (err) {
    if (err instanceof HostFull) return { full: err.hostId };
    if (isUniqueViolation(err)) {
      await job.onUniqueViolation?.();
      return { full: seen?.hostId ?? hostIds[0]! };
    }
    throw err;
  } finally {
    // What the transaction saw (before its own reservation), plus that reservation when it committed.
    unclaim?.();
    if (seen) ctx.index?.update(seen.hostId, seen.host && placed ? afterPlacement([seen.host], seen.hostId, job.request, placed.gpuUuids)[0] : seen.host);
  }
}

/** Thrown inside a candidate's transaction to roll it back when the host has no room now. */
class HostFull extends Error {
  constructor(readonly hostId: string) {
    super(`host ${hostId} has no room now`);
  }
}

/**
 * Reserves on a locked host, inside the caller's transaction: the GPUs the fit check picked and
 * (unless the environment keeps its ports) an SSH and a Jupyter port, and records the placement on
 * the environment. Null when a port range is full; the unique keys on (host, gpu) and (host, port)
 * make any double allocation fail the transaction.
 */
async function reserveOnHost(
  trx: Trx,
  args: PlacementJob & { space: PortSpace; gpuUuids: readonly string[]; ports: PortRanges },
): Promise<Reservation | null> {
  const hostId = args.space.hostId;
  if (args.gpuUuids.length > 0) {
    await trx
      .insertInto('gpu_reservations')
      .values(args.gpuUuids.map((uuid) => ({ host_id: hostId, gpu_uuid: uuid, env_id: args.envId })))
      .execute();
  }
  const taken = await reservePorts(trx, { envId: args.envId, hostId, space: args.space, ports: args.ports, wantJupyter: args.wantJupyter, existingPorts: args.existingPorts });
  if (!taken) return null;
  await setPlacement(trx, args.envId, {
    hostId,
    cpu: args.request.cpuCores,
    memoryBytes: args.request.memoryBytes,
    // The whole volume, never the growth a start asked the fit check for.
    storageBytes: args.reservedStorageBytes ?? args.request.storageBytes,
    sshPort: taken.ssh,
    jupyterPort: taken.jupyter,
  });
  return { hostId, gpuUuids: args.gpuUuids, sshPort: taken.ssh, jupyterPort: taken.jupyter };
}

/**
 * Gives back CPU, memory and GPUs of an environment (stop). Storage and ports stay: the data and
 * the addresses users know remain on the host.
 */
export async function releaseCompute(trx: Trx, envId: string): Promise<void> {
  await trx.deleteFrom('gpu_reservations').where('env_id', '=', envId).execute();
  await clearReserved(trx, envId, 'compute');
}

/** Gives back everything an environment holds (after its removal was confirmed). */
export async function releaseAll(trx: Trx, envId: string): Promise<void> {
  await trx.deleteFrom('gpu_reservations').where('env_id', '=', envId).execute();
  await releasePorts(trx, envId);
  await clearReserved(trx, envId, 'all');
}
