import type { Db } from '../db/database.js';
import type { EnvStatus } from '../db/schema.js';
import type { Principal } from '../access/principal.js';
import { visibleEnvironments } from '../access/visibility.js';

/** Columns an API view of an environment needs, with its host's public address. */
export async function findVisible(db: Db, p: Principal, envId: string) {
  return db
    .selectFrom('environments')
    .leftJoin('hosts', 'hosts.id', 'environments.host_id')
    .selectAll('environments')
    .select('hosts.public_address')
    .where('environments.id', '=', envId)
    .where('environments.desired_state', '!=', 'deleted')
    .where(visibleEnvironments(p))
    .executeTakeFirst();
}

export type EnvWithHost = NonNullable<Awaited<ReturnType<typeof findVisible>>>;

/** A page of visible environments, newest first, and the exact total. */
export async function listVisible(
  db: Db,
  p: Principal,
  filter: { status?: EnvStatus | undefined; workspaceId?: number | undefined; limit: number; offset: number },
): Promise<{ rows: EnvWithHost[]; total: number }> {
  let base = db
    .selectFrom('environments')
    .where('environments.desired_state', '!=', 'deleted')
    .where(visibleEnvironments(p));
  if (filter.status) base = base.where('environments.status', '=', filter.status);
  if (filter.workspaceId !== undefined) base = base.where('environments.workspace_id', '=', filter.workspaceId);
  const [count, rows] = await Promise.all([
    base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
    base
      .leftJoin('hosts', 'hosts.id', 'environments.host_id')
      .selectAll('environments')
      .select('hosts.public_address')
      .orderBy('environments.created_at', 'desc')
      .orderBy('environments.id', 'desc')
      .limit(filter.limit)
      .offset(filter.offset)
      .execute(),
  ]);
  return { rows, total: Number(count.n) };
}
