import { sql, type Kysely } from 'kysely';

// Reads that scale (issue 12): environment lists walk an index in their order instead of sorting
// the table, and their `total` comes from a tally kept by the database instead of a count(*).
//
// - One index per list order and filter, on rows not deleted (the only ones a list shows), in the
//   list's order (created_at desc, id desc). The owner and workspace ones carry the columns the
//   other filters test, so a page's offset is walked in the index alone.
// - environment_tallies: how many environments not deleted there are per (owner, workspace,
//   status). A trigger on environments appends a +1 row for a row's new key and a -1 row for its
//   old one whenever an insert, delete or update changes the key or whether the row is deleted, in
//   the writing transaction: the sums are exact at every commit, whoever writes the row (the
//   environment writers, a bulk load, another replica). Appending, never updating a shared row,
//   means concurrent writers never wait on each other; environments.repo.ts folds the rows of a
//   scope into one per key when they pile up (compactTallies).

export async function up(db: Kysely<any>): Promise<void> {
  const live = sql`where desired_state <> 'deleted'`;
  await sql`create index environments_list_idx on environments (created_at desc, id desc) ${live}`.execute(db);
  await sql`create index environments_list_status_idx on environments (status, created_at desc, id desc) ${live}`.execute(db);
  await sql`create index environments_list_owner_idx on environments (owner_id, created_at desc, id desc) include (status, workspace_id) ${live}`.execute(db);
  await sql`create index environments_list_workspace_idx on environments (workspace_id, created_at desc, id desc) include (status, owner_id) ${live} and workspace_id is not null`.execute(db);

  await db.schema
    .createTable('environment_tallies')
    .addColumn('owner_id', 'integer', (c) => c.notNull())
    .addColumn('workspace_id', 'integer')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('n', 'integer', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('environment_tallies_owner_idx').on('environment_tallies').column('owner_id').execute();
  await db.schema.createIndex('environment_tallies_workspace_idx').on('environment_tallies').column('workspace_id').execute();

  await sql`
    create function environment_tallies_track() returns trigger language plpgsql as $$
    begin
      if tg_op <> 'INSERT' and old.desired_state <> 'deleted' then
        if tg_op = 'UPDATE' and new.desired_state <> 'deleted' and new.owner_id = old.owner_id
           and new.workspace_id is not distinct from old.workspace_id and new.status = old.status then
          return null;
        end if;
        insert into environment_tallies (owner_id, workspace_id, status, n) values (old.owner_id, old.workspace_id, old.status, -1);
      end if;
      if tg_op <> 'DELETE' and new.desired_state <> 'deleted' then
        insert into environment_tallies (owner_id, workspace_id, status, n) values (new.owner_id, new.workspace_id, new.status, 1);
      end if;
      return null;
    end $$`.execute(db);
  await sql`
    create trigger environment_tallies_track
    after insert or delete or update of owner_id, workspace_id, status, desired_state on environments
    for each row execute function environment_tallies_track()`.execute(db);
  await sql`
    insert into environment_tallies (owner_id, workspace_id, status, n)
    select owner_id, workspace_id, status, count(*) from environments ${live} group by owner_id, workspace_id, status`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger environment_tallies_track on environments`.execute(db);
  await sql`drop function environment_tallies_track()`.execute(db);
  await db.schema.dropTable('environment_tallies').execute();
  for (const name of ['environments_list_idx', 'environments_list_status_idx', 'environments_list_owner_idx', 'environments_list_workspace_idx']) {
    await db.schema.dropIndex(name).execute();
  }
}
