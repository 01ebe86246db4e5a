import { sql } from 'kysely';
import { addressesOverlap } from '../../common/ports.js';
import type { Db, Trx } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import { schedule, type HostSnapshot, type PlacementRequest } from '../scheduler/index.js';
import { snapshotForScheduling } from '../hosts/scheduling-snapshot.js';
import { clearReserved, requestChange, setPlacement } from './environment-writes.js';

export interface PortRanges {
  readonly ssh: { readonly from: number; readonly to: number };
  readonly jupyter: { readonly from: number; readonly to: number };
}

export interface Reservation {
  readonly hostId: string;
  readonly gpuUuids: readonly string[];
  readonly sshPort: number;
  readonly jupyterPort: number | null;
}

/** What one placement needs; the hooks run inside each candidate host's transaction. */
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
  /** Only this host (a start: the environment's data lives there); no scheduling pass first. */
  readonly onlyHostId?: string | undefined;
  /** The hosts to schedule the first round on instead of a fresh snapshot (the queue's one snapshot per pass). */
  readonly snapshot?: readonly HostSnapshot[];
  /** Rounds of fresh snapshots before giving up (concurrent requests may take every fit). */
  readonly rounds?: number;
  /** Before reserving: insert or lock the row; return false to give up on this job altogether. */
  before?(trx: Trx, hostId: string): Promise<boolean>;
  /** After reserving, in the same transaction: the status change and its event. */
  after(trx: Trx, reservation: Reservation): Promise<void>;
  /** A unique key was violated on a candidate (may throw to stop, e.g. a duplicate request). */
  onUniqueViolation?(): Promise<void>;
}

export type PlacementResult = { readonly ok: true; readonly reservation: Reservation } | { readonly ok: false; readonly message: string };

const NO_HOST_YET = 'no host is registered yet; install an agent on a GPU server (see README)';

/**
 * The one placement loop, for create, start and the queue: takes a fresh snapshot, asks the
 * scheduler for candidates and tries them in rank order, each in its own transaction (`before`,
 * reserve, `after`). A host that filled up meanwhile or a unique violation (a concurrent
 * reservation won) moves on to the next candidate. Gives up after `rounds` rounds with the
 * scheduler's reason, or when `before` says the job is gone.
 */
export async function placeOnAnyHost(db: Db, ports: PortRanges, job: PlacementJob): Promise<PlacementResult> {
  let message = NO_HOST_YET;
  for (let round = 0; round < (job.rounds ?? 1); round++) {
    let hostIds: readonly string[];
    if (job.onlyHostId) {
      hostIds = [job.onlyHostId];
    } else {
      const hosts = round === 0 && job.snapshot ? job.snapshot : await snapshotForScheduling(db);
      const result = schedule(job.request, hosts);
      if (!result.ok) return { ok: false, message: result.message };
      hostIds = result.candidates.map((c) => c.hostId);
    }
    for (const hostId of hostIds) {
      const outcome = await tryHost(db, ports, job, hostId);
      if (outcome === 'gone') return { ok: false, message: 'the environment changed meanwhile' };
      if (outcome !== 'full') return { ok: true, reservation: outcome };
    }
    message = job.onlyHostId ? `host ${job.onlyHostId} has no room now` : 'every host that fit a moment ago was taken by concurrent requests';
  }
  return { ok: false, message };
}

async function tryHost(db: Db, ports: PortRanges, job: PlacementJob, hostId: string): Promise<Reservation | 'full' | 'gone'> {
  try {
    return await db.transaction().execute(async (trx) => {
      if (job.before && !(await job.before(trx, hostId))) return 'gone' as const;
      const reservation = await reserveOnHost(trx, { ...job, hostId, ports });
      if (!reservation) throw new HostFull();
      await job.after(trx, reservation);
      return reservation;
    });
  } catch (err) {
    if (err instanceof HostFull) return 'full';
    if (isUniqueViolation(err)) {
      await job.onUniqueViolation?.();
      return 'full';
    }
    throw err;
  }
}

/** Thrown inside a candidate's transaction to roll it back when the host has no room now. */
class HostFull extends Error {}

/**
 * Reserves what `request` needs on one host, inside the caller's transaction: locks the host row
 * (so placements on a host are serialised across controller replicas), checks its free capacity
 * again from the database, takes concrete GPUs and (unless the environment keeps its ports) an SSH
 * and a Jupyter port, and records the placement on the environment. Returns null when the host
 * has no room now; the unique keys on (host, gpu) and (host, port) make any double allocation fail
 * the transaction.
 */
async function reserveOnHost(
  trx: Trx,
  args: {
    envId: string;
    hostId: string;
    request: PlacementRequest;
    reservedStorageBytes?: number;
    ports: PortRanges;
    wantJupyter: boolean;
    existingPorts?: { ssh: number | null; jupyter: number | null };
  },
): Promise<Reservation | null> {
  const space = await lockPortSpace(trx, args.hostId);
  if (!space) return null;
  const result = schedule(args.request, await snapshotForScheduling(trx, { hostIds: [args.hostId] }));
  if (!result.ok) return null;
  const gpuUuids = result.candidates[0]!.gpuUuids;
  if (gpuUuids.length > 0) {
    await trx
      .insertInto('gpu_reservations')
      .values(gpuUuids.map((uuid) => ({ host_id: args.hostId, gpu_uuid: uuid, env_id: args.envId })))
      .execute();
  }
  const taken = await reservePorts(trx, { ...args, space });
  if (!taken) return null;
  await setPlacement(trx, args.envId, {
    hostId: args.hostId,
    cpu: args.request.cpuCores,
    memoryBytes: args.request.memoryBytes,
    // The whole volume, never the growth a start asked the fit check for.
    storageBytes: args.reservedStorageBytes ?? args.request.storageBytes,
    sshPort: taken.ssh,
    jupyterPort: taken.jupyter,
  });
  return { hostId: args.hostId, gpuUuids, sshPort: taken.ssh, jupyterPort: taken.jupyter };
}

/** Keeps the environment's ports or reserves the first free ones; null when a range is full. */
async function reservePorts(
  trx: Trx,
  args: { envId: string; hostId: string; space: PortSpace; ports: PortRanges; wantJupyter: boolean; existingPorts?: { ssh: number | null; jupyter: number | null } },
): Promise<{ ssh: number; jupyter: number | null } | null> {
  let ssh = args.existingPorts?.ssh ?? null;
  let jupyter = args.existingPorts?.jupyter ?? null;
  if (ssh !== null && (!args.wantJupyter || jupyter !== null)) return { ssh, jupyter };
  const taken = await takenPorts(trx, args.space);
  const rows: { host_id: string; port: number; env_id: string; purpose: 'ssh' | 'jupyter' }[] = [];
  if (ssh === null) {
    ssh = firstFree(args.ports.ssh, taken);
    if (ssh === null) return null;
    rows.push({ host_id: args.hostId, port: ssh, env_id: args.envId, purpose: 'ssh' });
    taken.add(ssh);
  }
  if (args.wantJupyter && jupyter === null) {
    jupyter = firstFree(args.ports.jupyter, taken);
    if (jupyter === null) return null;
    rows.push({ host_id: args.hostId, port: jupyter, env_id: args.envId, purpose: 'jupyter' });
  }
  await trx.insertInto('port_reservations').values(rows).execute();
  return { ssh, jupyter };
}

/**
 * The hosts whose published ports can collide with one host's: the host itself, and the other
 * hosts of its machine (same machine id: several agents on one Docker engine) whose publish
 * addresses overlap its own (the same address, or either of them 0.0.0.0 or unknown).
 */
interface PortSpace {
  readonly hostId: string;
  /** Every host sharing the port space, the host itself included. */
  readonly hostIds: readonly string[];
  /** The ports those hosts' agents reported busy. */
  readonly busy: readonly number[];
}

/**
 * Locks the host row and the rows of the other hosts of its machine (in id order, so two
 * placements on sibling hosts never deadlock and never pick one port twice), and returns the
 * host's port space; null when the host is gone.
 */
async function lockPortSpace(trx: Trx, hostId: string): Promise<PortSpace | null> {
  const rows = await trx
    .selectFrom('hosts')
    .select(['id', 'publish_address', 'busy_ports'])
    .where((eb) =>
      eb.or([
        eb('id', '=', hostId),
        eb.and([eb('machine_id', '<>', ''), eb('machine_id', '=', eb.selectFrom('hosts as h').select('h.machine_id').where('h.id', '=', hostId))]),
      ]),
    )
    .orderBy('id')
    .forUpdate()
    .execute();
  const self = rows.find((r) => r.id === hostId);
  if (!self) return null;
  const sharing = rows.filter((r) => r.id === hostId || addressesOverlap(r.publish_address, self.publish_address));
  return { hostId, hostIds: sharing.map((r) => r.id), busy: sharing.flatMap((r) => r.busy_ports ?? []) };
}

/** Ports reserved by any host of the space, and the ports its agents reported busy. */
async function takenPorts(trx: Trx, space: PortSpace): Promise<Set<number>> {
  const reserved = await trx.selectFrom('port_reservations').select('port').where('host_id', 'in', [...space.hostIds]).execute();
  return new Set([...reserved.map((r) => r.port), ...space.busy]);
}

/** What moving an environment off a taken port did. */
export interface PortMove {
  readonly purpose: 'ssh' | 'jupyter';
  readonly from: number;
  readonly to: number;
}

/**
 * An agent found host port `busyPort` of environment `envId` taken on its host: in one
 * transaction, notes the port as busy on the host (until its agent's next report says otherwise),
 * releases it, reserves the first free port of the same range instead, points the environment at
 * it and moves its spec on (the reconciler applies the new spec at once), with an event. Null when
 * the environment no longer holds that port (nothing to do) or the range has no free port left.
 */
export async function movePortOff(db: Db, ports: PortRanges, envId: string, busyPort: number): Promise<PortMove | null> {
  return db.transaction().execute(async (trx) => {
    const env = await trx.selectFrom('environments').select(['host_id', 'status', 'ssh_port', 'jupyter_port']).where('id', '=', envId).forUpdate().executeTakeFirst();
    if (!env?.host_id) return null;
    const purpose = env.ssh_port === busyPort ? 'ssh' : env.jupyter_port === busyPort ? 'jupyter' : null;
    if (!purpose) return null;
    const space = await lockPortSpace(trx, env.host_id);
    if (!space) return null;
    await trx
      .updateTable('hosts')
      .set({ busy_ports: sql<number[]>`array_append(busy_ports, ${busyPort}::integer)` })
      .where('id', '=', env.host_id)
      .where(sql<boolean>`not (${busyPort}::integer = any(busy_ports))`)
      .execute();
    const taken = await takenPorts(trx, space);
    taken.add(busyPort);
    const to = firstFree(ports[purpose], taken);
    if (to === null) return null;
    await trx.deleteFrom('port_reservations').where('env_id', '=', envId).where('port', '=', busyPort).execute();
    await trx.insertInto('port_reservations').values({ host_id: env.host_id, port: to, env_id: envId, purpose }).execute();
    const what = purpose === 'ssh' ? 'SSH' : 'Jupyter';
    await requestChange(trx, envId, { status: env.status, [`${purpose}_port`]: to }, { kind: 'port_moved', message: `${what} port ${busyPort} was in use on the host; moved to ${to}` });
    return { purpose, from: busyPort, to };
  });
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
  await trx.deleteFrom('port_reservations').where('env_id', '=', envId).execute();
  await clearReserved(trx, envId, 'all');
}

function firstFree(range: { from: number; to: number }, taken: ReadonlySet<number>): number | null {
  for (let port = range.from; port <= range.to; port++) if (!taken.has(port)) return port;
  return null;
}
