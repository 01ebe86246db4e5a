import type { Db } from '../db/database.js';
import { generateToken, hashToken } from './tokens.js';
import { insertToken } from './users.repo.js';

export interface BootstrapResult {
  /** True when this call created the admin (first start on an empty database). */
  readonly created: boolean;
  /** The admin token when it was generated now (to print once); undefined otherwise. */
  readonly generatedToken: string | undefined;
}

/**
 * On an empty database, creates the admin user with `bootstrapToken` (or a random token, returned
 * so the caller prints it once). When a bootstrap token is configured and the database already has
 * users, makes sure that token still works for the admin (so a restart with the same variable keeps
 * working). Safe under concurrent controller starts: a unique name decides.
 */
export async function bootstrapAdmin(db: Db, bootstrapToken: string | undefined): Promise<BootstrapResult> {
  return db.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('users').select('id').where('name', '=', 'admin').executeTakeFirst();
    if (existing) {
      if (bootstrapToken) {
        const known = await trx.selectFrom('api_tokens').select('id').where('token_hash', '=', hashToken(bootstrapToken)).executeTakeFirst();
        if (!known) await insertToken(trx, existing.id, 'bootstrap', bootstrapToken);
      }
      return { created: false, generatedToken: undefined };
    }
    const anyUser = await trx.selectFrom('users').select('id').limit(1).executeTakeFirst();
    if (anyUser && !bootstrapToken) return { created: false, generatedToken: undefined };
    const admin = await trx
      .insertInto('users')
      .values({ name: 'admin', role: 'admin' })
      .onConflict((oc) => oc.column('name').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!admin) return { created: false, generatedToken: undefined };
    const token = bootstrapToken ?? generateToken();
    await insertToken(trx, admin.id, 'bootstrap', token);
    return { created: true, generatedToken: bootstrapToken ? undefined : token };
  });
}
