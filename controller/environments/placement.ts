import type { Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import { schedule, type PlacementRequest } from '../scheduler/index.js';
import { snapshotForScheduling } from '../hosts/scheduling-snapshot.js';

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

/**
 * Reserves what `request` needs on one host for an environment, inside the caller's transaction:
 * locks the host row (so placements on a host are serialised across controller replicas), checks
 * its free capacity again from the database, takes concrete GPUs and (unless the environment keeps
 * its ports) an SSH and a Jupyter port, and writes the reservations and the environment's
 * reserved_* columns. Returns null when the host has no room now; the unique keys on
 * (host, gpu) and (host, port) make any double allocation fail the transaction.
 */
export async function reserveOnHost(
  trx: Transaction<Database>,
  args: {
    envId: string;
    hostId: string;
    request: PlacementRequest;
    ports: PortRanges;
    wantJupyter: boolean;
    existingPorts?: { ssh: number | null; jupyter: number | null };
  },
): Promise<Reservation | null> {
  const locked = await trx.selectFrom('hosts').select('id').where('id', '=', args.hostId).forUpdate().executeTakeFirst();
  if (!locked) return null;
  const snapshots = await snapshotForScheduling(trx, { hostIds: [args.hostId] });
  const result = schedule(args.request, snapshots);
  if (!result.ok) return null;
  const candidate = result.candidates[0]!;

  if (candidate.gpuUuids.length > 0) {
    await trx
      .insertInto('gpu_reservations')
      .values(candidate.gpuUuids.map((uuid) => ({ host_id: args.hostId, gpu_uuid: uuid, env_id: args.envId })))
      .execute();
  }

  let sshPort = args.existingPorts?.ssh ?? null;
  let jupyterPort = args.existingPorts?.jupyter ?? null;
  if (sshPort === null || (args.wantJupyter && jupyterPort === null)) {
    const taken = new Set(
      (await trx.selectFrom('port_reservations').select('port').where('host_id', '=', args.hostId).execute()).map((r) => r.port),
    );
    const newPorts: { host_id: string; port: number; env_id: string; purpose: 'ssh' | 'jupyter' }[] = [];
    if (sshPort === null) {
      sshPort = firstFree(args.ports.ssh, taken);
      if (sshPort === null) return null;
      newPorts.push({ host_id: args.hostId, port: sshPort, env_id: args.envId, purpose: 'ssh' });
      taken.add(sshPort);
    }
    if (args.wantJupyter && jupyterPort === null) {
      jupyterPort = firstFree(args.ports.jupyter, taken);
      if (jupyterPort === null) return null;
      newPorts.push({ host_id: args.hostId, port: jupyterPort, env_id: args.envId, purpose: 'jupyter' });
    }
    await trx.insertInto('port_reservations').values(newPorts).execute();
  }

  await trx
    .updateTable('environments')
    .set({
      host_id: args.hostId,
      reserved_cpu: args.request.cpuCores,
      reserved_memory_bytes: args.request.memoryBytes,
      // A start on the same host passes 0: the environment's storage is still reserved there.
      ...(args.request.storageBytes > 0 ? { reserved_storage_bytes: args.request.storageBytes } : {}),
      ssh_port: sshPort,
      jupyter_port: jupyterPort,
    })
    .where('id', '=', args.envId)
    .execute();
  return { hostId: args.hostId, gpuUuids: candidate.gpuUuids, sshPort, jupyterPort };
}

/**
 * Gives back CPU, memory and GPUs of an environment (stop). Storage and ports stay: the data and
 * the addresses users know remain on the host.
 */
export async function releaseCompute(trx: Transaction<Database>, envId: string): Promise<void> {
  await trx.deleteFrom('gpu_reservations').where('env_id', '=', envId).execute();
  await trx.updateTable('environments').set({ reserved_cpu: 0, reserved_memory_bytes: 0 }).where('id', '=', envId).execute();
}

/** Gives back everything an environment holds (after its removal was confirmed). */
export async function releaseAll(trx: Transaction<Database>, envId: string): Promise<void> {
  await trx.deleteFrom('gpu_reservations').where('env_id', '=', envId).execute();
  await trx.deleteFrom('port_reservations').where('env_id', '=', envId).execute();
  await trx
    .updateTable('environments')
    .set({ reserved_cpu: 0, reserved_memory_bytes: 0, reserved_storage_bytes: 0 })
    .where('id', '=', envId)
    .execute();
}

/** True when a database error is a unique-key violation (a concurrent reservation won). */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === '23505' || /duplicate key|unique constraint/i.test(String((err as Error)?.message ?? ''));
}

function firstFree(range: { from: number; to: number }, taken: ReadonlySet<number>): number | null {
  for (let port = range.from; port <= range.to; port++) if (!taken.has(port)) return port;
  return null;
}
