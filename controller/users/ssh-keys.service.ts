import { AppError, fieldError } from '../../common/errors.js';
import type { Db } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import { pageOffset, type Page, type PageRequest } from '../db/pagination.js';
import type { EnvironmentEffects } from './environment-effects.js';
import { parseSshPublicKey } from './ssh-key-format.js';

export interface SshKey {
  readonly id: number;
  readonly name: string;
  readonly public_key: string;
  readonly fingerprint: string;
  readonly created_at: Date;
}

const COLUMNS = ['id', 'name', 'public_key', 'fingerprint', 'created_at'] as const;

/**
 * Users' SSH public keys, installed in every environment they own: a change reaches the running
 * ones within seconds (their authorized_keys is rewritten, the container is not recreated).
 */
export class SshKeysService {
  constructor(
    private readonly db: Db,
    private readonly effects: EnvironmentEffects,
  ) {}

  /**
   * Adds an OpenSSH public key to a user's keys. `name` defaults to the key's comment, else its
   * type. In the same transaction, the user's running environments are asked to install the new
   * key list (an `ssh_keys_updated` event each, naming the key by name and fingerprint). Throws
   * invalid_argument (field public_key) for anything that is not a supported public key, conflict
   * when the user already has this key.
   */
  async add(userId: number, input: { name: string | undefined; publicKey: string }): Promise<SshKey> {
    const parsed = parseSshPublicKey(input.publicKey);
    if (!parsed.ok) throw fieldError('public_key', parsed.problem);
    const { key } = parsed;
    const name = input.name ?? (key.comment.slice(0, 64) || key.type);
    let added: SshKey;
    try {
      added = await this.db.transaction().execute(async (trx) => {
        const row = await trx
          .insertInto('ssh_keys')
          .values({ user_id: userId, name, public_key: key.line, fingerprint: key.fingerprint })
          .returning(COLUMNS)
          .executeTakeFirstOrThrow();
        await this.effects.keysChanged(trx, userId, `SSH keys updated: key ${JSON.stringify(row.name)} (${row.fingerprint}) added`);
        return row;
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new AppError('conflict', `you already added this key (${key.fingerprint})`, { cause: err });
      throw err;
    }
    this.effects.committed();
    return added;
  }

  /** A user's keys in the order they were added. */
  async list(userId: number, page: PageRequest): Promise<Page<SshKey>> {
    const [items, count] = await Promise.all([
      this.db.selectFrom('ssh_keys').select(COLUMNS).where('user_id', '=', userId).orderBy('id').limit(page.pageSize).offset(pageOffset(page)).execute(),
      this.db.selectFrom('ssh_keys').select((eb) => eb.fn.countAll<number>().as('n')).where('user_id', '=', userId).executeTakeFirstOrThrow(),
    ]);
    return { items, total: Number(count.n) };
  }

  /** The public key lines of a user, for `/root/.ssh/authorized_keys` (oldest first). */
  async authorizedKeys(userId: number): Promise<string[]> {
    const rows = await this.db.selectFrom('ssh_keys').select('public_key').where('user_id', '=', userId).orderBy('id').execute();
    return rows.map((r) => r.public_key);
  }

  /**
   * Deletes one of a user's keys; in the same transaction their running environments are asked to
   * drop it (see add). Throws not_found when the key is absent or belongs to someone else.
   */
  async delete(userId: number, keyId: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const removed = await trx.deleteFrom('ssh_keys').where('id', '=', keyId).where('user_id', '=', userId).returning(['name', 'fingerprint']).executeTakeFirst();
      if (!removed) throw new AppError('not_found', `SSH key ${keyId} not found`);
      await this.effects.keysChanged(trx, userId, `SSH keys updated: key ${JSON.stringify(removed.name)} (${removed.fingerprint}) removed`);
    });
    this.effects.committed();
  }
}
