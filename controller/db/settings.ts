import type { Db } from './database.js';

/**
 * The value of a cluster setting, created with `generate()` when absent. Concurrent first starts of
 * several replicas agree: the first insert wins and the others read it.
 */
export async function storedSetting(db: Db, key: string, generate: () => string): Promise<string> {
  await db.insertInto('settings').values({ key, value: generate() }).onConflict((oc) => oc.column('key').doNothing()).execute();
  const row = await db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirstOrThrow();
  return row.value;
}
