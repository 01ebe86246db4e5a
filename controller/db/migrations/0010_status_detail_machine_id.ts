import { sql, type Kysely } from 'kysely';

// status_detail: the full text of an agent's error behind an environment's status_reason, which
// users see with host paths replaced (admins see this one); '' when the two are the same.

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table environments add column status_detail text not null default ''`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table environments drop column status_detail`.execute(db);
}
