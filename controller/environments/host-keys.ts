import { sql, type RawBuilder } from 'kysely';
import { hostKeyFingerprint, normalHostKeys, type SshHostKey } from '../../common/ssh-host-keys.js';
import type { Trx } from '../db/database.js';
import type { KnownEnvironment, ObservedEnvironment } from '../hosts/types.js';

// The SSH host keys of environments (issue 14): agents report the keys they read from each
// container; the environment row keeps those of its current container only, and the API offers
// them with their fingerprints (access_info.ssh_host_keys).

/** What to store for an environment: its keys and the container they belong to. */
export interface HostKeysUpdate {
  readonly envId: string;
  readonly container: string;
  readonly keys: readonly SshHostKey[];
}

/**
 * What a report means for an environment's stored host keys; undefined when they stay. Keys
 * reported with a container replace the stored ones when either differs. Without keys, the stored
 * ones stay only while they belong to the container the report shows (the agent may not have read
 * them again yet, e.g. after its own restart); a container removed or recreated (another id, or
 * none) takes them away: the keys of a removed container are never offered for its successor.
 */
export function hostKeysUpdate(row: Pick<KnownEnvironment, 'id' | 'ssh_host_keys' | 'ssh_host_keys_container'>, seen: ObservedEnvironment | undefined): HostKeysUpdate | undefined {
  const container = seen && seen.state !== 'absent' ? seen.containerId : '';
  const reported = seen?.sshHostKeys ?? [];
  if (container !== '' && reported.length > 0) {
    if (container === row.ssh_host_keys_container && sameKeys(row.ssh_host_keys, reported)) return undefined;
    return { envId: row.id, container, keys: reported };
  }
  const nothingStored = row.ssh_host_keys_container === '' && row.ssh_host_keys.length === 0;
  if (nothingStored || (container !== '' && row.ssh_host_keys_container === container)) return undefined;
  return { envId: row.id, container: '', keys: [] };
}

/**
 * Both lists are normal already (normalHostKeys: valid, distinct, sorted): reported ones by
 * observedFromProto, stored ones only ever written from those. Compared as they are: this runs on
 * every report of every environment.
 */
function sameKeys(stored: readonly SshHostKey[], reported: readonly SshHostKey[]): boolean {
  return stored.length === reported.length && stored.every((k, i) => k.type === reported[i]!.type && k.key === reported[i]!.key);
}

/** Writes host keys decided by hostKeysUpdate (rows of other hosts are left alone). */
export async function recordHostKeys(trx: Trx, hostId: string, updates: readonly HostKeysUpdate[]): Promise<void> {
  for (const u of updates) {
    await trx
      .updateTable('environments')
      .set({ ssh_host_keys: sql<SshHostKey[]>`${JSON.stringify(u.keys.map((k) => ({ type: k.type, key: k.key })))}::jsonb`, ssh_host_keys_container: u.container })
      .where('id', '=', u.envId)
      .where('host_id', '=', hostId)
      .execute();
  }
}

/**
 * The columns that keep or drop the stored SSH host keys for the container an apply answered with
 * (none when the outcome names no container): kept while it is the container they were read from;
 * another (recreated by this apply) or none takes them away at once. The new container's keys come
 * with a later report; until then none are offered rather than keys `ssh` would refuse.
 */
export function hostKeysOf(container: string | null | undefined) {
  if (container === undefined || container === null) return {};
  return keepHostKeysWhen(sql<boolean>`environments.ssh_host_keys_container = ${container}::text`);
}

/** The columns that keep the stored host keys (and their container) where `keep` holds and clear them elsewhere (hostKeysOf, recordOutcomes). */
export function keepHostKeysWhen(keep: RawBuilder<boolean>) {
  return {
    ssh_host_keys: sql<SshHostKey[]>`case when ${keep} then environments.ssh_host_keys else '[]'::jsonb end`,
    ssh_host_keys_container: sql<string>`case when ${keep} then environments.ssh_host_keys_container else '' end`,
  };
}

/** The API's view of stored host keys: the valid ones, each with its SHA256 fingerprint. */
export function hostKeysWithFingerprints(stored: unknown): { type: string; key: string; fingerprint: string }[] {
  const list = Array.isArray(stored) ? stored : [];
  const keys = list.filter((k): k is SshHostKey => typeof k === 'object' && k !== null && typeof (k as SshHostKey).type === 'string' && typeof (k as SshHostKey).key === 'string');
  return normalHostKeys(keys).map((k) => ({ type: k.type, key: k.key, fingerprint: hostKeyFingerprint(k.key) }));
}
