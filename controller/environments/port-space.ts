import { sql } from 'kysely';
import { addressesOverlap } from '../../common/ports.js';
import type { Db, Trx } from '../db/database.js';
import { requestChange } from './environment-writes.js';

export interface PortRanges {
  readonly ssh: { readonly from: number; readonly to: number };
  readonly jupyter: { readonly from: number; readonly to: number };
}

/**
 * The hosts whose published ports can collide with one host's: the host itself, and the other
 * hosts of its machine (same machine id: several agents on one Docker engine) whose publish
 * addresses overlap its own (the same address, or either of them 0.0.0.0 or unknown).
 */
export interface PortSpace {
  readonly hostId: string;
  /** Every host sharing the port space, the host itself included. */
  readonly hostIds: readonly string[];
  /** The ports those hosts' agents reported busy. */
  readonly busy: readonly number[];
}

type HostPortRow = { id: string; publish_address: string; busy_ports: number[] | null };

/**
 * Locks the host row and the rows of the other hosts of its machine, waiting for them (in id
 * order, so two placements on sibling hosts never deadlock and never pick one port twice), and
 * returns the host's port space; null when the host is gone.
 */
export async function lockPortSpace(trx: Trx, hostId: string): Promise<PortSpace | null> {
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
  return portSpaceOf(hostId, rows);
}

/**
 * Without waiting for any lock: locks the first host of `hostIds` (in that order) whose row no
 * other transaction holds (`FOR UPDATE SKIP LOCKED`, one statement), then its machine's other
 * hosts the same way. `none` when every host of the list is locked (or gone); `busy` when a
 * sibling host is locked, `siblingLocked` (this transaction holds the host then, and must end: it never waits
 * for a host, so it can hold no lock another placement waits on in a cycle).
 */
export async function lockFirstFree(trx: Trx, hostIds: readonly string[]): Promise<PortSpace | 'none' | { siblingLocked: string }> {
  const rank = sql<number>`case ${sql.join(hostIds.map((id, i) => sql`when id = ${id} then ${i}`), sql` `)} end`;
  const host = await trx
    .selectFrom('hosts')
    .select((eb) => [
      'id',
      'machine_id',
      'publish_address',
      'busy_ports',
      eb
        .selectFrom('hosts as s')
        .select(sql<number>`count(*)`.as('n'))
        .whereRef('s.machine_id', '=', 'hosts.machine_id')
        .whereRef('s.id', '<>', 'hosts.id')
        .where('s.machine_id', '<>', '')
        .$asScalar()
        .as('siblings'),
    ])
    .where('id', 'in', [...hostIds])
    .orderBy(rank)
    .limit(1)
    .forUpdate()
    .skipLocked()
    .executeTakeFirst();
  if (!host) return 'none';
  if (Number(host.siblings) === 0) return portSpaceOf(host.id, [host])!;
  const siblings = await trx
    .selectFrom('hosts')
    .select(['id', 'publish_address', 'busy_ports'])
    .where('machine_id', '=', host.machine_id)
    .where('id', '<>', host.id)
    .orderBy('id')
    .forUpdate()
    .skipLocked()
    .execute();
  if (siblings.length < Number(host.siblings)) return { siblingLocked: host.id };
  return portSpaceOf(host.id, [host, ...siblings])!;
}

function portSpaceOf(hostId: string, rows: readonly HostPortRow[]): PortSpace | null {
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

/** When each port of the space was last given back by any of its hosts, in ms since the epoch (one query). */
async function releaseTimes(trx: Trx, space: PortSpace): Promise<Map<number, number>> {
  const rows = await trx
    .selectFrom('port_releases')
    .select((eb) => ['port', eb.fn.max('released_at').as('at')])
    .where('host_id', 'in', [...space.hostIds])
    .groupBy('port')
    .execute();
  return new Map(rows.map((r) => [r.port, new Date(r.at).getTime()]));
}

/**
 * Deletes port reservations (all of an environment's, or one port of it) and notes when each port
 * was given back (port_releases), so the next reservations take other ports first (pickPort).
 */
export async function releasePorts(trx: Trx, envId: string, port?: number): Promise<void> {
  let del = trx.deleteFrom('port_reservations').where('env_id', '=', envId);
  if (port !== undefined) del = del.where('port', '=', port);
  const freed = await del.returning(['host_id', 'port']).execute();
  if (freed.length === 0) return;
  await trx
    .insertInto('port_releases')
    .values(freed.map((r) => ({ host_id: r.host_id, port: r.port, released_at: sql<Date>`now()` })))
    .onConflict((oc) => oc.columns(['host_id', 'port']).doUpdateSet({ released_at: (eb) => eb.ref('excluded.released_at') }))
    .execute();
}

/**
 * Keeps the environment's ports or reserves free ones (pickPort: never used first, else the one
 * freed longest ago); null when a range is full.
 */
export async function reservePorts(
  trx: Trx,
  args: { envId: string; hostId: string; space: PortSpace; ports: PortRanges; wantJupyter: boolean; existingPorts?: { ssh: number | null; jupyter: number | null } | undefined },
): Promise<{ ssh: number; jupyter: number | null } | null> {
  let ssh = args.existingPorts?.ssh ?? null;
  let jupyter = args.existingPorts?.jupyter ?? null;
  if (ssh !== null && (!args.wantJupyter || jupyter !== null)) return { ssh, jupyter };
  const taken = await takenPorts(trx, args.space);
  const released = await releaseTimes(trx, args.space);
  const rows: { host_id: string; port: number; env_id: string; purpose: 'ssh' | 'jupyter' }[] = [];
  if (ssh === null) {
    ssh = pickPort(args.ports.ssh, taken, released);
    if (ssh === null) return null;
    rows.push({ host_id: args.hostId, port: ssh, env_id: args.envId, purpose: 'ssh' });
    taken.add(ssh);
  }
  if (args.wantJupyter && jupyter === null) {
    jupyter = pickPort(args.ports.jupyter, taken, released);
    if (jupyter === null) return null;
    rows.push({ host_id: args.hostId, port: jupyter, env_id: args.envId, purpose: 'jupyter' });
  }
  await trx.insertInto('port_reservations').values(rows).execute();
  return { ssh, jupyter };
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
 * releases it, reserves another free port of the same range instead (pickPort), points the environment at
 * it and moves its spec on (the reconciler applies the new spec at once), with an event. Null when
 * the environment no longer holds that port (nothing to do) or the range has no free port left.
 * Locks the host's port space before the environment, the order every placement takes.
 */
export async function movePortOff(db: Db, ports: PortRanges, envId: string, busyPort: number): Promise<PortMove | null> {
  return db.transaction().execute(async (trx) => {
    const placed = await trx.selectFrom('environments').select('host_id').where('id', '=', envId).executeTakeFirst();
    if (!placed?.host_id) return null;
    const space = await lockPortSpace(trx, placed.host_id);
    if (!space) return null;
    const env = await trx.selectFrom('environments').select(['host_id', 'status', 'ssh_port', 'jupyter_port']).where('id', '=', envId).forUpdate().executeTakeFirst();
    if (env?.host_id !== placed.host_id) return null;
    const purpose = env.ssh_port === busyPort ? 'ssh' : env.jupyter_port === busyPort ? 'jupyter' : null;
    if (!purpose) return null;
    await trx
      .updateTable('hosts')
      .set({ busy_ports: sql<number[]>`array_append(busy_ports, ${busyPort}::integer)` })
      .where('id', '=', env.host_id)
      .where(sql<boolean>`not (${busyPort}::integer = any(busy_ports))`)
      .execute();
    const taken = await takenPorts(trx, space);
    taken.add(busyPort);
    const to = pickPort(ports[purpose], taken, await releaseTimes(trx, space));
    if (to === null) return null;
    await releasePorts(trx, envId, busyPort);
    await trx.insertInto('port_reservations').values({ host_id: env.host_id, port: to, env_id: envId, purpose }).execute();
    const what = purpose === 'ssh' ? 'SSH' : 'Jupyter';
    await requestChange(trx, envId, { status: env.status, [`${purpose}_port`]: to }, { kind: 'port_moved', message: `${what} port ${busyPort} was in use on the host; moved to ${to}` });
    return { purpose, from: busyPort, to };
  });
}

/**
 * The port of `range` to hand out: the lowest free one never released in the space, else the free
 * one released longest ago (the lowest of equals); null when none is free. A deleted environment's
 * address thus goes to a new environment only when the range has no other (ssh clients remember
 * host keys by address). Pure; linear in the range.
 */
export function pickPort(range: { from: number; to: number }, taken: ReadonlySet<number>, released: ReadonlyMap<number, number>): number | null {
  let oldest: number | null = null;
  let oldestAt = Infinity;
  for (let port = range.from; port <= range.to; port++) {
    if (taken.has(port)) continue;
    const at = released.get(port);
    if (at === undefined) return port;
    if (at < oldestAt) {
      oldest = port;
      oldestAt = at;
    }
  }
  return oldest;
}
