import { sql } from 'kysely';
import type { Db } from './database.js';

/** How long `GET /readyz` waits for the database's answer to `select 1`. */
export const READY_TIMEOUT_MS = 2_000;

/** Whether the database answers (for `GET /readyz`). */
export class DatabaseHealth {
  constructor(private readonly db: Db) {}

  /** True when the database answers `select 1` within `timeoutMs`; false on any error or when it is late. */
  async ping(timeoutMs = READY_TIMEOUT_MS): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const answer = sql`select 1`.execute(this.db).then(
      () => true,
      () => false,
    );
    try {
      return await Promise.race([answer, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}
