import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { SshHostKey } from '../../common/ssh-host-keys.js';
import type { HostGpusTable, HostsTable } from './host-tables.js';

export type { HostAdminState, HostGpusTable, HostLiveness, HostsTable } from './host-tables.js';

// Table types for Kysely. Column names are snake_case as in SQL; bigint columns are parsed to
// JavaScript numbers by the dialects (see database.ts), so sizes up to 2^53 bytes are exact.

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

export type UserRole = 'admin' | 'user';
export type DesiredState = 'running' | 'stopped' | 'deleted';
/** Every status an environment can have (the API's `status` filter accepts exactly these). */
export const ENV_STATUSES = ['pending', 'creating', 'starting', 'running', 'stopping', 'stopped', 'restarting', 'deleting', 'error', 'lost'] as const;
export type EnvStatus = (typeof ENV_STATUSES)[number];

/** Statuses that mean "the container should be up right now": a silent host makes them `lost`. */
export const ACTIVE_ENV_STATUSES = ['running', 'creating', 'starting', 'restarting', 'stopping'] as const satisfies readonly EnvStatus[];

export interface UsersTable {
  id: Generated<number>;
  name: string;
  email: string | null;
  role: ColumnType<UserRole, UserRole | undefined, UserRole>;
  created_at: Timestamp;
  disabled_at: NullableTimestamp;
}

export interface ApiTokensTable {
  id: Generated<number>;
  user_id: number;
  name: string;
  token_hash: string;
  prefix: string;
  created_at: Timestamp;
  last_used_at: NullableTimestamp;
  expires_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
}

/** A terminal ticket (migration 0017): single use, short-lived; only hashes are stored. */
export interface TerminalTicketsTable {
  ticket_hash: string;
  env_id: string;
  user_id: number;
  token_hash: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  used_at: NullableTimestamp;
}

export interface WorkspacesTable {
  id: Generated<number>;
  name: string;
  owner_id: number;
  created_at: Timestamp;
}

export interface WorkspaceMembersTable {
  workspace_id: number;
  user_id: number;
  role: ColumnType<'owner' | 'member', 'owner' | 'member' | undefined, 'owner' | 'member'>;
  created_at: Timestamp;
}

export interface SshKeysTable {
  id: Generated<number>;
  user_id: number;
  name: string;
  public_key: string;
  fingerprint: string;
  created_at: Timestamp;
}

export interface ImagesTable {
  id: Generated<number>;
  name: string;
  docker_ref: string;
  description: Generated<string>;
  ssh_port: Generated<number>;
  jupyter_port: number | null;
  data_path: Generated<string>;
  created_at: Timestamp;
}

export interface DatasetsTable {
  id: Generated<number>;
  name: string;
  description: Generated<string>;
  host_path: string;
  owner_id: number | null;
  workspace_id: number | null;
  /** Whether users may mount it read-write; false: every mount of it is read-only (admin-set). */
  writable: Generated<boolean>;
  created_at: Timestamp;
}

export interface EnvironmentsTable {
  id: string;
  owner_id: number;
  workspace_id: number | null;
  name: string;
  description: Generated<string>;
  image_id: number;
  image: string;
  /** The image's Docker reference, sshd port, Jupyter port (null: none) and data path, copied at create: later catalog edits do not change the environment. */
  image_ref: string;
  image_ssh_port: number;
  image_jupyter_port: number | null;
  image_data_path: string;
  cpu: number;
  memory_bytes: number;
  gpu: Generated<number>;
  storage_bytes: number;
  gpu_model: string | null;
  desired_state: DesiredState;
  status: EnvStatus;
  status_reason: Generated<string>;
  /** The full text behind status_reason when that one has host paths replaced (admins see it); '' when the same. */
  status_detail: Generated<string>;
  host_id: string | null;
  reserved_cpu: Generated<number>;
  reserved_memory_bytes: Generated<number>;
  reserved_storage_bytes: Generated<number>;
  ssh_port: number | null;
  jupyter_port: number | null;
  jupyter_token: string;
  idempotency_key: string | null;
  spec_generation: Generated<number>;
  applied_generation: Generated<number>;
  observed_state: Generated<string>;
  observed_at: NullableTimestamp;
  /** Used bytes of its storage volume as last reported; null: unknown (not mounted, legacy volume). */
  storage_used_bytes: Generated<number | null>;
  /** Bytes in its container's writable layer as last reported; null: not measured yet. */
  rootfs_used_bytes: Generated<number | null>;
  /** When the report carrying those figures arrived. */
  usage_measured_at: NullableTimestamp;
  /** The SSH host public keys its agent read from its current container ([{type, key}]); [] until read. */
  ssh_host_keys: Generated<SshHostKey[]>;
  /** The id of the container those keys were read from; '' when none are known. */
  ssh_host_keys_container: Generated<string>;
  /** The reconciler's backoff: not tried again before this time while `attempt_generation` is still the spec generation. */
  next_attempt_at: NullableTimestamp;
  /** Failed attempts at `attempt_generation` (the backoff's exponent). */
  attempt_count: Generated<number>;
  attempt_generation: Generated<number | null>;
  created_at: Timestamp;
  updated_at: Timestamp;
  started_at: NullableTimestamp;
  stopped_at: NullableTimestamp;
  deleted_at: NullableTimestamp;
}

export interface GpuReservationsTable {
  host_id: string;
  gpu_uuid: string;
  env_id: string;
  created_at: Timestamp;
}

export interface PortReservationsTable {
  host_id: string;
  port: number;
  env_id: string;
  purpose: 'ssh' | 'jupyter';
  created_at: Timestamp;
}

/** When a host port was last given back; a new reservation prefers ports never used, then the oldest release. */
export interface PortReleasesTable {
  host_id: string;
  port: number;
  released_at: Timestamp;
}

export interface EnvironmentMountsTable {
  env_id: string;
  dataset_id: number;
  mount_path: string;
  readonly: Generated<boolean>;
  created_at: Timestamp;
}

export interface EnvironmentEventsTable {
  id: Generated<number>;
  env_id: string;
  at: Timestamp;
  source: 'platform' | 'agent';
  kind: string;
  message: string;
}

/**
 * How many environments not deleted there are per (owner, workspace, status): the sum of `n` over
 * a key's rows. Appended to by a trigger on environments (migration 0016), folded by
 * environments.repo.ts; never written by hand.
 */
export interface EnvironmentTalliesTable {
  owner_id: number;
  workspace_id: number | null;
  status: string;
  n: number;
}

/** The cluster CA: certificate, and private key encrypted with the controller's secret key. */
export interface ClusterCaTable {
  id: number;
  cert_pem: string;
  /** base64 of AES-256-GCM iv | tag | ciphertext of the PKCS#8 DER key. */
  key_ciphertext: string;
  /** sha256 of the encrypting key (hex, first 16): tells a wrong REMOTEGPU_SECRET_KEY apart from corruption. */
  key_id: string;
  created_at: Timestamp;
}

/** Join tokens an admin manages: only the hash of the secret is kept. */
export interface JoinTokensTable {
  id: string;
  secret_hash: string;
  description: Generated<string>;
  requires_approval: Generated<boolean>;
  max_uses: number | null;
  uses: Generated<number>;
  expires_at: NullableTimestamp;
  created_by: number | null;
  created_at: Timestamp;
  last_used_at: NullableTimestamp;
}

/** Every certificate issued to a host (fingerprints only; the keys never leave the hosts). */
export interface HostCertificatesTable {
  serial: string;
  host_id: string;
  /** sha256 (hex) of the certificate's SubjectPublicKeyInfo: one registration per key. */
  key_sha256: string;
  /** sha256 (hex) of the certificate's DER. */
  cert_sha256: string;
  not_after: Timestamp;
  issued_at: Timestamp;
}

/** Limits an admin set for a user or a workspace (null: unlimited); sizes in bytes, CPU in cores. */
type QuotaLimitsColumns = Record<'gpus' | 'cpu' | 'memory' | 'storage' | 'environments' | 'pending_environments', number | null> & { updated_at: Timestamp };
export type UserQuotasTable = QuotaLimitsColumns & { user_id: number };
export type WorkspaceQuotasTable = QuotaLimitsColumns & { workspace_id: number };

export interface SettingsTable {
  key: string;
  value: string;
}

export interface Database {
  settings: SettingsTable;
  cluster_ca: ClusterCaTable;
  join_tokens: JoinTokensTable;
  host_certificates: HostCertificatesTable;
  users: UsersTable;
  api_tokens: ApiTokensTable;
  terminal_tickets: TerminalTicketsTable;
  workspaces: WorkspacesTable;
  workspace_members: WorkspaceMembersTable;
  ssh_keys: SshKeysTable;
  images: ImagesTable;
  hosts: HostsTable;
  host_gpus: HostGpusTable;
  datasets: DatasetsTable;
  environments: EnvironmentsTable;
  gpu_reservations: GpuReservationsTable;
  port_reservations: PortReservationsTable;
  port_releases: PortReleasesTable;
  environment_mounts: EnvironmentMountsTable;
  environment_events: EnvironmentEventsTable;
  environment_tallies: EnvironmentTalliesTable;
  user_quotas: UserQuotasTable;
  workspace_quotas: WorkspaceQuotasTable;
}

export type UserRow = Selectable<UsersTable>;
export type HostRow = Selectable<HostsTable>;
export type HostGpuRow = Selectable<HostGpusTable>;
export type EnvironmentRow = Selectable<EnvironmentsTable>;
export type NewEnvironment = Insertable<EnvironmentsTable>;
export type EnvironmentUpdate = Updateable<EnvironmentsTable>;
export type ImageRow = Selectable<ImagesTable>;
export type DatasetRow = Selectable<DatasetsTable>;
