import { sql, type Kysely } from 'kysely';

// Migrations never import application code: they describe the schema as it was when written.
// SQL here must run on PostgreSQL 15 and on PGlite (PostgreSQL 18).

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('id', 'integer', (c) => c.primaryKey().generatedByDefaultAsIdentity())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('email', 'text')
    .addColumn('role', 'text', (c) => c.notNull().defaultTo('user').check(sql`role in ('admin', 'user')`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('disabled_at', 'timestamptz')
    .execute();

  await db.schema
    .createTable('api_tokens')
    .addColumn('id', 'integer', (c) => c.primaryKey().generatedByDefaultAsIdentity())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    // sha256 of the token; the token itself is shown once and never stored.
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    // First characters of the token, to tell tokens apart in listings.
    .addColumn('prefix', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_used_at', 'timestamptz')
    .addColumn('expires_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('api_tokens_user_idx').on('api_tokens').column('user_id').execute();

  await db.schema
    .createTable('workspaces')
    .addColumn('id', 'integer', (c) => c.primaryKey().generatedByDefaultAsIdentity())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('owner_id', 'integer', (c) => c.notNull().references('users.id'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('workspace_members')
    .addColumn('workspace_id', 'integer', (c) => c.notNull().references('workspaces.id').onDelete('cascade'))
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('role', 'text', (c) => c.notNull().defaultTo('member').check(sql`role in ('owner', 'member')`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('workspace_members_pk', ['workspace_id', 'user_id'])
    .execute();
  await db.schema.createIndex('workspace_members_user_idx').on('workspace_members').column('user_id').execute();

  await db.schema
    .createTable('ssh_keys')
    .addColumn('id', 'integer', (c) => c.primaryKey().generatedByDefaultAsIdentity())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('public_key', 'text', (c) => c.notNull())
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('ssh_keys_user_fingerprint_key', ['user_id', 'fingerprint'])
    .execute();

  await db.schema
    .createTable('images')
    .addColumn('id', 'integer', (c) => c.primaryKey().generatedByDefaultAsIdentity())
    // The name users write, e.g. "ubuntu20-pytorch:2.0".
    .addColumn('name', 'text', (c) => c.notNull().unique())
    // What Docker runs, e.g. "registry.example.com/ml/pytorch:2.0-cuda12".
    .addColumn('docker_ref', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('ssh_port', 'integer', (c) => c.notNull().defaultTo(22))
    .addColumn('jupyter_port', 'integer')
    .addColumn('data_path', 'text', (c) => c.notNull().defaultTo('/root/workspace'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('hosts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('hostname', 'text', (c) => c.notNull())
    .addColumn('public_address', 'text', (c) => c.notNull())
    .addColumn('agent_address', 'text', (c) => c.notNull())
    .addColumn('agent_version', 'text', (c) => c.notNull().defaultTo(''))
    // Secret shared with the agent: it presents it on ReportStatus, the controller on AgentService calls.
    .addColumn('credential', 'text', (c) => c.notNull())
    // Liveness from reports: online | offline.
    .addColumn('liveness', 'text', (c) => c.notNull().defaultTo('online').check(sql`liveness in ('online', 'offline')`))
    // Admin's scheduling state: active | cordoned | draining.
    .addColumn('admin_state', 'text', (c) =>
      c.notNull().defaultTo('active').check(sql`admin_state in ('active', 'cordoned', 'draining')`),
    )
    .addColumn('os', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('kernel', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('cpu_model', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('cpu_cores', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('memory_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('disk_total_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('disk_free_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('driver_version', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('cuda_version', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('gpu_mode', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('gpu_condition', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('last_report_at', 'timestamptz')
    .addColumn('last_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('registered_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('hosts_liveness_idx').on('hosts').columns(['liveness', 'admin_state']).execute();

  await db.schema
    .createTable('host_gpus')
    .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id').onDelete('cascade'))
    .addColumn('uuid', 'text', (c) => c.notNull())
    .addColumn('index', 'integer', (c) => c.notNull())
    .addColumn('model', 'text', (c) => c.notNull())
    .addColumn('memory_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('memory_used_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('utilization_percent', 'integer', (c) => c.notNull().defaultTo(-1))
    .addColumn('temperature_c', 'integer', (c) => c.notNull().defaultTo(-1))
    .addColumn('pci_bus_id', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('health', 'text', (c) => c.notNull().defaultTo('healthy').check(sql`health in ('healthy', 'unhealthy')`))
    .addColumn('health_reason', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('mig_enabled', 'boolean', (c) => c.notNull().defaultTo(false))
    // False once the agent stops reporting the GPU (kept so reservations and history stay valid).
    .addColumn('present', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('host_gpus_pk', ['host_id', 'uuid'])
    .execute();
  await db.schema.createIndex('host_gpus_model_idx').on('host_gpus').column('model').execute();

  await db.schema
    .createTable('datasets')
    .addColumn('id', 'integer', (c) => c.primaryKey().generatedByDefaultAsIdentity())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    // Directory on the GPU hosts that holds the data (same path on every host, e.g. an NFS mount).
    .addColumn('host_path', 'text', (c) => c.notNull())
    // Who may mount it: a user, a workspace, or everybody when both are null.
    .addColumn('owner_id', 'integer', (c) => c.references('users.id').onDelete('cascade'))
    .addColumn('workspace_id', 'integer', (c) => c.references('workspaces.id').onDelete('cascade'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('datasets_owner_idx').on('datasets').column('owner_id').execute();
  await db.schema.createIndex('datasets_workspace_idx').on('datasets').column('workspace_id').execute();

  await db.schema
    .createTable('environments')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('owner_id', 'integer', (c) => c.notNull().references('users.id'))
    .addColumn('workspace_id', 'integer', (c) => c.references('workspaces.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('image_id', 'integer', (c) => c.notNull().references('images.id'))
    .addColumn('image', 'text', (c) => c.notNull())
    .addColumn('cpu', 'integer', (c) => c.notNull())
    .addColumn('memory_bytes', 'bigint', (c) => c.notNull())
    .addColumn('gpu', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('storage_bytes', 'bigint', (c) => c.notNull())
    .addColumn('gpu_model', 'text')
    // What the user asked for: running | stopped | deleted.
    .addColumn('desired_state', 'text', (c) =>
      c.notNull().check(sql`desired_state in ('running', 'stopped', 'deleted')`),
    )
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('status_reason', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('host_id', 'text', (c) => c.references('hosts.id'))
    // CPU and memory held on the host right now (0 while pending, stopped or deleted).
    .addColumn('reserved_cpu', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('reserved_memory_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('reserved_storage_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('ssh_port', 'integer')
    .addColumn('jupyter_port', 'integer')
    .addColumn('jupyter_token', 'text', (c) => c.notNull())
    .addColumn('idempotency_key', 'text')
    // Bumped on every change the agent must apply; the reconciler applies until applied = spec.
    .addColumn('spec_generation', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('applied_generation', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('observed_state', 'text', (c) => c.notNull().defaultTo('unknown'))
    .addColumn('observed_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('stopped_at', 'timestamptz')
    .addColumn('deleted_at', 'timestamptz')
    .addUniqueConstraint('environments_owner_idempotency_key', ['owner_id', 'idempotency_key'])
    .execute();
  await db.schema.createIndex('environments_owner_created_idx').on('environments').columns(['owner_id', 'created_at']).execute();
  await db.schema.createIndex('environments_workspace_idx').on('environments').columns(['workspace_id', 'created_at']).execute();
  await db.schema.createIndex('environments_status_idx').on('environments').columns(['status', 'created_at']).execute();
  await db.schema.createIndex('environments_host_idx').on('environments').column('host_id').execute();
  await db.schema
    .createIndex('environments_unsettled_idx')
    .on('environments')
    .column('updated_at')
    .where(sql.ref('desired_state'), '=', 'deleted')
    .execute();

  await db.schema
    .createTable('gpu_reservations')
    .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id'))
    .addColumn('gpu_uuid', 'text', (c) => c.notNull())
    .addColumn('env_id', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // A GPU can be held by one environment at a time: the database refuses a double allocation.
    .addPrimaryKeyConstraint('gpu_reservations_pk', ['host_id', 'gpu_uuid'])
    .execute();
  await db.schema.createIndex('gpu_reservations_env_idx').on('gpu_reservations').column('env_id').execute();

  await db.schema
    .createTable('port_reservations')
    .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id'))
    .addColumn('port', 'integer', (c) => c.notNull())
    .addColumn('env_id', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('purpose', 'text', (c) => c.notNull().check(sql`purpose in ('ssh', 'jupyter')`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('port_reservations_pk', ['host_id', 'port'])
    .execute();
  await db.schema.createIndex('port_reservations_env_idx').on('port_reservations').column('env_id').execute();

  await db.schema
    .createTable('environment_mounts')
    .addColumn('env_id', 'text', (c) => c.notNull().references('environments.id').onDelete('cascade'))
    .addColumn('dataset_id', 'integer', (c) => c.notNull().references('datasets.id'))
    .addColumn('mount_path', 'text', (c) => c.notNull())
    .addColumn('readonly', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('environment_mounts_pk', ['env_id', 'dataset_id'])
    .addUniqueConstraint('environment_mounts_path_key', ['env_id', 'mount_path'])
    .execute();
  await db.schema.createIndex('environment_mounts_dataset_idx').on('environment_mounts').column('dataset_id').execute();

  await db.schema
    .createTable('environment_events')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity())
    .addColumn('env_id', 'text', (c) => c.notNull().references('environments.id').onDelete('cascade'))
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // platform (controller) or agent.
    .addColumn('source', 'text', (c) => c.notNull().check(sql`source in ('platform', 'agent')`))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('message', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('environment_events_env_at_idx').on('environment_events').columns(['env_id', 'at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'environment_events',
    'environment_mounts',
    'port_reservations',
    'gpu_reservations',
    'environments',
    'datasets',
    'host_gpus',
    'hosts',
    'images',
    'ssh_keys',
    'workspace_members',
    'workspaces',
    'api_tokens',
    'users',
  ]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
