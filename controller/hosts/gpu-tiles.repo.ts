import type { Db } from '../db/database.js';
import type { GpuHealth } from './model.js';

// What the admin console shows of hosts beyond the listing: every GPU with the environment (and its
// owner) that holds it, the environments on a host, and their recent events. Each is one statement.

/** One GPU of a host as a tile of the console's host grid. */
export interface GpuTile {
  readonly hostId: string;
  readonly index: number;
  readonly uuid: string;
  readonly model: string;
  readonly memoryBytes: number;
  readonly health: GpuHealth;
  readonly healthReason: string;
  /** False once the agent stopped reporting it. */
  readonly present: boolean;
  /** The environment holding it (reserved under any host id), with its name and its owner's name. */
  readonly envId: string | null;
  readonly envName: string | null;
  readonly ownerName: string | null;
}

/**
 * Every GPU of the hosts `hostIds` (a page of the listing) with its holder, in one statement:
 * grouped by host, reported ones first, by index.
 */
export async function listGpuTiles(db: Db, hostIds: readonly string[]): Promise<Map<string, GpuTile[]>> {
  const tiles = new Map<string, GpuTile[]>(hostIds.map((id) => [id, []]));
  if (hostIds.length === 0) return tiles;
  const rows = await db
    .selectFrom('host_gpus as g')
    .leftJoin('gpu_reservations as r', 'r.gpu_uuid', 'g.uuid')
    .leftJoin('environments as e', 'e.id', 'r.env_id')
    .leftJoin('users as u', 'u.id', 'e.owner_id')
    .select([
      'g.host_id as hostId',
      'g.index',
      'g.uuid',
      'g.model',
      'g.memory_bytes as memoryBytes',
      'g.health',
      'g.health_reason as healthReason',
      'g.present',
      'r.env_id as envId',
      'e.name as envName',
      'u.name as ownerName',
    ])
    .where('g.host_id', 'in', [...hostIds])
    .orderBy('g.host_id')
    .orderBy('g.present', 'desc')
    .orderBy('g.index')
    .orderBy('g.uuid')
    .execute();
  for (const row of rows) tiles.get(row.hostId)?.push(row);
  return tiles;
}

/** An environment placed on a host, as the host's detail lists it. */
export interface HostEnvironment {
  readonly id: string;
  readonly name: string;
  readonly ownerName: string;
  readonly status: string;
  readonly gpu: number;
  readonly cpu: number;
  readonly memoryBytes: number;
  readonly storageBytes: number;
  readonly createdAt: Date;
}

/** The environments on a host that are not deleted (at most `limit`, oldest first). */
export async function listHostEnvironments(db: Db, hostId: string, limit: number): Promise<HostEnvironment[]> {
  return db
    .selectFrom('environments as e')
    .innerJoin('users as u', 'u.id', 'e.owner_id')
    .select(['e.id', 'e.name', 'u.name as ownerName', 'e.status', 'e.gpu', 'e.cpu', 'e.memory_bytes as memoryBytes', 'e.storage_bytes as storageBytes', 'e.created_at as createdAt'])
    .where('e.host_id', '=', hostId)
    .where('e.desired_state', '<>', 'deleted')
    .orderBy('e.created_at')
    .orderBy('e.id')
    .limit(limit)
    .execute();
}

/** An event of an environment on a host. */
export interface HostEvent {
  readonly envId: string;
  readonly at: Date;
  readonly kind: string;
  readonly message: string;
}

/** The latest `limit` events of the environments placed on a host (deleted ones included), newest first. */
export async function listHostEvents(db: Db, hostId: string, limit: number): Promise<HostEvent[]> {
  return db
    .selectFrom('environment_events as ev')
    .select(['ev.env_id as envId', 'ev.at', 'ev.kind', 'ev.message'])
    .where('ev.env_id', 'in', (eb) => eb.selectFrom('environments as e').select('e.id').where('e.host_id', '=', hostId))
    .orderBy('ev.at', 'desc')
    .orderBy('ev.id', 'desc')
    .limit(limit)
    .execute();
}

