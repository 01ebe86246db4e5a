import type { ColumnType, Generated } from 'kysely';

// The hosts' table types (see schema.ts for the conventions).

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

export type HostLiveness = 'online' | 'offline';
export type HostAdminState = 'active' | 'cordoned' | 'draining';

export interface HostsTable {
  id: string;
  hostname: string;
  public_address: string;
  agent_address: string;
  agent_version: Generated<string>;
  /** False while a host registered with a token that requires approval waits for an admin. */
  approved: Generated<boolean>;
  approved_at: NullableTimestamp;
  /** The admin join token it registered with; null for the bootstrap token (REMOTEGPU_JOIN_TOKEN). */
  join_token_id: Generated<string | null>;
  liveness: ColumnType<HostLiveness, HostLiveness | undefined, HostLiveness>;
  admin_state: ColumnType<HostAdminState, HostAdminState | undefined, HostAdminState>;
  os: Generated<string>;
  kernel: Generated<string>;
  cpu_model: Generated<string>;
  cpu_cores: Generated<number>;
  memory_bytes: Generated<number>;
  disk_total_bytes: Generated<number>;
  disk_free_bytes: Generated<number>;
  /** Bytes of the data disk the agent keeps free (REMOTEGPU_DISK_RESERVE): not schedulable. */
  disk_reserve_bytes: Generated<number>;
  /** Free space below the reserve (the agent says so): the host takes no new environments. */
  disk_pressure: Generated<boolean>;
  driver_version: Generated<string>;
  cuda_version: Generated<string>;
  gpu_mode: Generated<string>;
  gpu_condition: Generated<string>;
  /** Why the agent's container runtime (Docker) does not answer, as the agent says; '' while it does (0013). */
  runtime_error: Generated<string>;
  /** Since when its reports say the runtime does not answer; null while it does (0013). */
  runtime_down_since: NullableTimestamp;
  last_report_at: NullableTimestamp;
  last_seq: Generated<number>;
  registered_at: Timestamp;
  /** The OS machine id the agent reports (/etc/machine-id); '' when unknown. */
  machine_id: Generated<string>;
  /** The host that registered earlier from the same machine (same machine id); null when none. */
  replaces_host_id: Generated<string | null>;
  /** The address the agent publishes ports on; '' when it does not say (0011). */
  publish_address: Generated<string>;
  /** TCP ports busy on the host for that address, as last reported (0011): never handed out. */
  busy_ports: Generated<number[]>;
  /** Hash of the facts last written (host columns but free disk and busy ports, GPUs' steady fields); null: write at the next report (0015). */
  facts_hash: Generated<string | null>;
  /** Hash of the usage figures last written (free disk, GPU utilization, memory used, temperature) (0015). */
  telemetry_hash: Generated<string | null>;
  /** When those usage figures were last written (0015). */
  telemetry_at: NullableTimestamp;
}

export interface HostGpusTable {
  host_id: string;
  uuid: string;
  index: number;
  model: string;
  memory_bytes: Generated<number>;
  memory_used_bytes: Generated<number>;
  utilization_percent: Generated<number>;
  temperature_c: Generated<number>;
  pci_bus_id: Generated<string>;
  health: ColumnType<'healthy' | 'unhealthy', 'healthy' | 'unhealthy' | undefined, 'healthy' | 'unhealthy'>;
  health_reason: Generated<string>;
  mig_enabled: Generated<boolean>;
  present: Generated<boolean>;
  updated_at: Timestamp;
}
