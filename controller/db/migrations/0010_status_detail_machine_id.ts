import { sql, type Kysely } from 'kysely';

// status_detail: the full text of an agent's error behind an environment's status_reason, which
// users see with host paths replaced (admins see this one); '' when the two are the same.
//
// GPU UUIDs are unique across hosts: an agent that lost its identity and registered again under a
// new host id reports the same physical GPUs, which environments of its former host may still
// hold. A reservation now holds the UUID whatever the host (unique index). Reservations made twice
// before this migration keep the oldest holder; each environment whose duplicate reservation is
// dropped gets an event saying so (its container may still use the GPU until it is stopped).
//
// machine_id: the OS machine id an agent reports (/etc/machine-id); replaces_host_id: the host
// that registered earlier from the same machine (set at registration, shown to admins).

export const DUPLICATE_GPU_MESSAGE =
  'GPU reservation dropped: the same GPU (UUID) was also reserved under another host id (the machine registered again); stop and start this environment to get free GPUs';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table environments add column status_detail text not null default ''`.execute(db);

  await sql`
    with ranked as (
      select host_id, gpu_uuid, env_id, row_number() over (partition by gpu_uuid order by created_at, host_id) as n
      from gpu_reservations
    ), dropped as (
      delete from gpu_reservations r using ranked d
      where r.host_id = d.host_id and r.gpu_uuid = d.gpu_uuid and d.n > 1
      returning r.env_id
    )
    insert into environment_events (env_id, at, source, kind, message)
    select distinct env_id, now(), 'platform', 'gpu_conflict', ${DUPLICATE_GPU_MESSAGE} from dropped`.execute(db);
  await db.schema.createIndex('gpu_reservations_gpu_uuid_key').on('gpu_reservations').column('gpu_uuid').unique().execute();

  await db.schema
    .alterTable('hosts')
    .addColumn('machine_id', 'text', (c) => c.notNull().defaultTo(''))
    .execute();
  await db.schema
    .alterTable('hosts')
    .addColumn('replaces_host_id', 'text', (c) => c.references('hosts.id').onDelete('set null'))
    .execute();
  await db.schema.createIndex('hosts_machine_id_idx').on('hosts').column('machine_id').where(sql.ref('machine_id'), '<>', '').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('hosts_machine_id_idx').execute();
  await db.schema.alterTable('hosts').dropColumn('replaces_host_id').execute();
  await db.schema.alterTable('hosts').dropColumn('machine_id').execute();
  await db.schema.dropIndex('gpu_reservations_gpu_uuid_key').execute();
  await sql`alter table environments drop column status_detail`.execute(db);
}
