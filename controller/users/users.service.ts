import { AppError } from '../../common/errors.js';
import type { Principal } from '../access/principal.js';
import type { Db, Trx } from '../db/database.js';
import type { UserRole, UserRow } from '../db/schema.js';
import { isUniqueViolation } from '../db/errors.js';
import { pageOffset, type Page, type PageRequest } from '../db/pagination.js';
import type { EnvironmentEffects } from './environment-effects.js';
import { generateToken, hashToken } from './tokens.js';
import { insertToken } from './users.repo.js';
import { PrincipalCache } from './principal-cache.js';

/** What the API shows of a token: never the token or its hash. */
export interface TokenInfo {
  readonly id: number;
  readonly name: string;
  readonly prefix: string;
  readonly created_at: Date;
  readonly last_used_at: Date | null;
  readonly expires_at: Date | null;
  readonly revoked_at: Date | null;
}

/** A token just created: `token` is shown once and never again. */
export interface CreatedToken extends TokenInfo {
  readonly token: string;
}

export interface NewUser {
  readonly name: string;
  readonly email: string | null;
  readonly role: UserRole;
}

const TOKEN_COLUMNS = ['id', 'name', 'prefix', 'created_at', 'last_used_at', 'expires_at', 'revoked_at'] as const;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Writing on every request would serialise all requests of a user; once a minute is enough. */
const LAST_USED_RESOLUTION_MS = 60_000;

/** Default of REMOTEGPU_AUTH_CACHE_MS: how long a token's principal is trusted without asking the database. */
export const DEFAULT_AUTH_CACHE_MS = 5_000;

/** Users, their API tokens, and authentication by token. */
export class UsersService {
  private readonly principals: PrincipalCache;

  constructor(
    private readonly db: Db,
    private readonly effects: EnvironmentEffects,
    options: { authCacheMs?: number } = {},
  ) {
    this.principals = new PrincipalCache(options.authCacheMs ?? DEFAULT_AUTH_CACHE_MS);
  }

  /**
   * The user owning a valid (unrevoked, unexpired) token, or undefined. Records the last use (at
   * most once a minute). A valid token's principal is remembered for REMOTEGPU_AUTH_CACHE_MS
   * (PrincipalCache): a revocation or a disable here takes effect at once, one on another replica
   * within that time.
   */
  async authenticate(token: string): Promise<Principal | undefined> {
    const hash = hashToken(token);
    const now = Date.now();
    const cached = this.principals.get(hash, now);
    if (cached) {
      if (cached.lastUsedAt === null || now - cached.lastUsedAt > LAST_USED_RESOLUTION_MS) {
        cached.lastUsedAt = now;
        await this.db.updateTable('api_tokens').set({ last_used_at: new Date(now) }).where('id', '=', cached.tokenId).execute();
      }
      return cached.principal;
    }
    const mark = this.principals.mark();
    const row = await this.db
      .selectFrom('api_tokens as t')
      .innerJoin('users as u', 'u.id', 't.user_id')
      .select(['t.id as tokenId', 'u.id as userId', 'u.name', 'u.role', 't.last_used_at', 't.expires_at'])
      .where('t.token_hash', '=', hash)
      .where('t.revoked_at', 'is', null)
      .where('u.disabled_at', 'is', null)
      .where((eb) => eb.or([eb('t.expires_at', 'is', null), eb('t.expires_at', '>', new Date(now))]))
      .executeTakeFirst();
    if (!row) return undefined;
    let lastUsedAt = row.last_used_at?.getTime() ?? null;
    if (lastUsedAt === null || now - lastUsedAt > LAST_USED_RESOLUTION_MS) {
      lastUsedAt = now;
      await this.db.updateTable('api_tokens').set({ last_used_at: new Date(now) }).where('id', '=', row.tokenId).execute();
    }
    const principal: Principal = { userId: row.userId, name: row.name, role: row.role };
    this.principals.set(hash, { principal, tokenId: row.tokenId, expiresAt: row.expires_at?.getTime() ?? null, lastUsedAt, readAt: now }, mark);
    return principal;
  }

  /**
   * For each token hash, the token's user as a fresh principal while the token is valid, or why it
   * no longer is ('token revoked' also for a token that no longer exists, 'token expired', 'user
   * disabled'). One query for all of them; records no use. Long-lived requests (log follows)
   * re-check their caller with it.
   */
  async checkTokens(hashes: readonly string[]): Promise<Map<string, { principal: Principal } | { ended: string }>> {
    const out = new Map<string, { principal: Principal } | { ended: string }>(hashes.map((h) => [h, { ended: 'token revoked' }]));
    if (hashes.length === 0) return out;
    const rows = await this.db
      .selectFrom('api_tokens as t')
      .innerJoin('users as u', 'u.id', 't.user_id')
      .select(['t.token_hash', 't.revoked_at', 't.expires_at', 'u.disabled_at', 'u.id as userId', 'u.name', 'u.role'])
      .where('t.token_hash', 'in', [...new Set(hashes)])
      .execute();
    const now = Date.now();
    for (const r of rows) {
      const ended = r.disabled_at ? 'user disabled' : r.revoked_at ? 'token revoked' : r.expires_at && r.expires_at.getTime() <= now ? 'token expired' : undefined;
      out.set(r.token_hash, ended ? { ended } : { principal: { userId: r.userId, name: r.name, role: r.role } });
    }
    return out;
  }

  /** Creates a user. A taken name (disabled users keep theirs) is a conflict. */
  async create(input: NewUser): Promise<UserRow> {
    try {
      return await this.db.insertInto('users').values(input).returningAll().executeTakeFirstOrThrow();
    } catch (err) {
      if (isUniqueViolation(err)) throw new AppError('conflict', `a user named "${input.name}" already exists; choose another name`, { cause: err });
      throw err;
    }
  }

  /** Users in id order, disabled ones included. */
  async list(page: PageRequest): Promise<Page<UserRow>> {
    const [items, count] = await Promise.all([
      this.db.selectFrom('users').selectAll().orderBy('id').limit(page.pageSize).offset(pageOffset(page)).execute(),
      this.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items, total: Number(count.n) };
  }

  /** One user. Throws not_found. */
  async get(userId: number): Promise<UserRow> {
    const user = await this.db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst();
    if (!user) throw new AppError('not_found', `user ${userId} not found`);
    return user;
  }

  /**
   * Disables a user, revokes all of their tokens and, in the same transaction, stops every
   * environment they own (data kept; a `stop_requested` event each); the spec of a disabled
   * owner's environment carries no SSH keys. The other environments of their workspaces get a new
   * Jupyter token (a running one is recreated with it). The row stays so history keeps its owner. Idempotent.
   * Refuses (wrong_state) to disable the caller's own account or the last enabled admin, which
   * would lock everybody out of the admin routes. Throws not_found.
   */
  async disable(userId: number, callerId: number): Promise<void> {
    if (userId === callerId) throw new AppError('wrong_state', 'you cannot disable your own account; ask another admin');
    await this.db.transaction().execute(async (trx) => {
      // Lock the user row so two admins disabling each other cannot both succeed.
      const user = await trx.selectFrom('users').selectAll().where('id', '=', userId).forUpdate().executeTakeFirst();
      if (!user) throw new AppError('not_found', `user ${userId} not found`);
      const now = new Date();
      if (!user.disabled_at) {
        if (user.role === 'admin') await assertAnotherAdmin(trx, userId);
        await trx.updateTable('users').set({ disabled_at: now }).where('id', '=', userId).execute();
      }
      await trx.updateTable('api_tokens').set({ revoked_at: now }).where('user_id', '=', userId).where('revoked_at', 'is', null).execute();
      await this.effects.ownerDisabled(trx, { id: user.id, name: user.name });
    });
    this.principals.forgetUser(userId);
    this.effects.committed();
  }

  /**
   * Enables a disabled user again. Their tokens stay revoked (create a new one) and nothing of
   * theirs is started: their environments stay stopped until someone starts them. Idempotent.
   * Throws not_found.
   */
  async enable(userId: number): Promise<UserRow> {
    const user = await this.db.updateTable('users').set({ disabled_at: null }).where('id', '=', userId).returningAll().executeTakeFirst();
    if (!user) throw new AppError('not_found', `user ${userId} not found`);
    return user;
  }

  /**
   * Creates an API token for an enabled user; the token itself is returned only here (stored
   * hashed). `expiresInDays` undefined means it never expires. Throws not_found, or wrong_state for
   * a disabled user.
   */
  async createToken(userId: number, name: string, expiresInDays: number | undefined): Promise<CreatedToken> {
    const user = await this.get(userId);
    if (user.disabled_at) throw new AppError('wrong_state', `user ${userId} is disabled; tokens cannot be created for it`);
    const token = generateToken();
    const expiresAt = expiresInDays === undefined ? null : new Date(Date.now() + expiresInDays * DAY_MS);
    const row = await insertToken(this.db, userId, name, token, expiresAt);
    return { ...row, last_used_at: null, revoked_at: null, token };
  }

  /** A user's tokens, newest first, revoked and expired ones included. Throws not_found for the user. */
  async listTokens(userId: number, page: PageRequest): Promise<Page<TokenInfo>> {
    await this.get(userId);
    const [items, count] = await Promise.all([
      this.db
        .selectFrom('api_tokens')
        .select(TOKEN_COLUMNS)
        .where('user_id', '=', userId)
        .orderBy('id', 'desc')
        .limit(page.pageSize)
        .offset(pageOffset(page))
        .execute(),
      this.db.selectFrom('api_tokens').select((eb) => eb.fn.countAll<number>().as('n')).where('user_id', '=', userId).executeTakeFirstOrThrow(),
    ]);
    return { items, total: Number(count.n) };
  }

  /** Revokes one of a user's tokens. Idempotent. Throws not_found when the user has no such token. */
  async revokeToken(userId: number, tokenId: number): Promise<void> {
    const token = await this.db
      .selectFrom('api_tokens')
      .select(['id', 'revoked_at'])
      .where('id', '=', tokenId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    if (!token) throw new AppError('not_found', `user ${userId} has no token ${tokenId}`);
    if (!token.revoked_at) await this.db.updateTable('api_tokens').set({ revoked_at: new Date() }).where('id', '=', tokenId).execute();
    this.principals.forgetToken(tokenId);
  }
}

/** Throws wrong_state unless an enabled admin other than `userId` exists (locking those rows). */
async function assertAnotherAdmin(trx: Trx, userId: number): Promise<void> {
  const others = await trx
    .selectFrom('users')
    .select('id')
    .where('role', '=', 'admin')
    .where('disabled_at', 'is', null)
    .where('id', '<>', userId)
    .forUpdate()
    .execute();
  if (others.length === 0) throw new AppError('wrong_state', `user ${userId} is the last enabled admin; create another admin first`);
}
