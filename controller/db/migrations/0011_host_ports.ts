import { sql, type Kysely } from 'kysely';

// publish_address: the host address the host's agent publishes containers' ports on ('' from an
// agent that does not say). busy_ports: the TCP ports something listens on there, as the agent
// last reported them (and a port an apply found taken, until the next report): the port picker
// never hands them out. Hosts of one machine (machine_id) whose publish addresses overlap share
// one port space (controller/environments/placement.ts).

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('hosts')
    .addColumn('publish_address', 'text', (c) => c.notNull().defaultTo(''))
    .execute();
  await db.schema
    .alterTable('hosts')
    .addColumn('busy_ports', sql`integer[]`, (c) => c.notNull().defaultTo(sql`'{}'::integer[]`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('hosts').dropColumn('busy_ports').execute();
  await db.schema.alterTable('hosts').dropColumn('publish_address').execute();
}
