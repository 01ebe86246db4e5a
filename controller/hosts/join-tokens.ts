import { randomBytes } from 'node:crypto';
import { AppError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { hashSecret, sameSecret, secretMatchesHash } from '../../common/secrets.js';
import type { Db, Trx } from '../db/database.js';
import { pageOffset, type Page, type PageRequest } from '../db/pagination.js';
import { newJoinTokenId } from '../ids.js';
import { deleteJoinToken, findJoinToken, insertJoinToken, listJoinTokens, lockJoinToken, recordJoinTokenUse, type JoinTokenInfo } from './join-tokens.repo.js';

export type { JoinTokenInfo, JoinTokenState } from './join-tokens.repo.js';

export interface JoinTokensDeps {
  readonly db: Db;
  readonly logger: Logger;
  /** REMOTEGPU_JOIN_TOKEN: registers hosts without approval (one-machine mode, tests); undefined: none. */
  readonly bootstrapToken: string | undefined;
  /** The pin of the cluster CA, "sha256:<64 hex>", appended to every token handed out. */
  readonly caPin: () => string;
}

export interface CreateJoinTokenInput {
  readonly description?: string;
  /** null or absent: never expires. */
  readonly expiresAt?: Date | null;
  /** null or absent: unlimited. */
  readonly maxUses?: number | null;
  /** Hosts registered with it wait for POST /admin/hosts/{id}/approve (default true). */
  readonly requiresApproval?: boolean;
  /** The admin creating it. */
  readonly createdBy: number | null;
}

/** A join token just created: `token` is shown once and never again. */
export interface CreatedJoinToken extends JoinTokenInfo {
  /** `jt_<id>.<secret>@sha256:<CA pin>`: what the agent is given. */
  readonly token: string;
  /** The CA pin alone ("sha256:<64 hex>"), also the part of `token` after "@". */
  readonly ca_cert_hash: string;
}

/** What a registration may do after presenting a join token. */
export interface JoinTokenGrant {
  /** The admin join token used; null for the bootstrap token. */
  readonly tokenId: string | null;
  readonly requiresApproval: boolean;
}

/** The secret part of an admin join token: `jt_<10 [a-z0-9]>.<base64url>`. */
const ADMIN_TOKEN = /^(jt_[a-z0-9]{10})\.([A-Za-z0-9_-]{16,128})$/;
const CREATE_HINT = 'ask an admin for a new one (POST /api/v1/admin/join-tokens)';

/**
 * Join tokens as admin-managed objects (create, list, get, delete) and the check a registration
 * makes with the token an agent presents. Only sha256 hashes of the secrets are stored; neither
 * tokens nor secrets are logged or echoed in errors.
 */
export class JoinTokens {
  private readonly bootstrapHash: string | undefined;

  constructor(private readonly deps: JoinTokensDeps) {
    this.bootstrapHash = deps.bootstrapToken ? hashSecret(deps.bootstrapToken) : undefined;
  }

  /** Creates a join token; the token is returned only here (its secret is stored hashed). */
  async create(input: CreateJoinTokenInput): Promise<CreatedJoinToken> {
    const caPin = this.deps.caPin();
    for (let attempt = 0; attempt < 5; attempt++) {
      const id = newJoinTokenId();
      const secretPart = `${id}.${randomBytes(32).toString('base64url')}`;
      const row = await insertJoinToken(this.deps.db, {
        id,
        secretHash: hashSecret(secretPart),
        description: input.description ?? '',
        requiresApproval: input.requiresApproval ?? true,
        maxUses: input.maxUses ?? null,
        expiresAt: input.expiresAt ?? null,
        createdBy: input.createdBy,
      });
      if (row) {
        this.deps.logger.info(
          { tokenId: id, requiresApproval: row.requires_approval, maxUses: row.max_uses, expiresAt: row.expires_at, createdBy: row.created_by },
          'join token created',
        );
        return { ...row, token: `${secretPart}@${caPin}`, ca_cert_hash: caPin };
      }
    }
    throw new AppError('internal', 'could not allocate a unique join token id');
  }

  /** One page of join tokens, newest first. */
  async list(page: PageRequest): Promise<Page<JoinTokenInfo>> {
    return listJoinTokens(this.deps.db, { limit: page.pageSize, offset: pageOffset(page) });
  }

  /** One join token. Throws not_found. */
  async get(id: string): Promise<JoinTokenInfo> {
    const row = await findJoinToken(this.deps.db, id);
    if (!row) throw notFound(id);
    return row;
  }

  /** Deletes a join token: no host registers with it anymore; hosts registered with it stay. Throws not_found. */
  async delete(id: string): Promise<void> {
    if (!(await deleteJoinToken(this.deps.db, id))) throw notFound(id);
    this.deps.logger.info({ tokenId: id }, 'join token deleted');
  }

  /**
   * Checks the join token a registering agent presents (its secret part, without "@sha256:…") and
   * counts the use, inside the registration transaction `trx`: an admin token (`jt_<id>.<secret>`)
   * is locked, checked (hash, expiry, uses) and its use recorded; anything else must be the
   * bootstrap token. Throws `unauthenticated` with the reason (never the secret).
   */
  async consume(trx: Trx, presented: string): Promise<JoinTokenGrant> {
    if (!presented) throw new AppError('unauthenticated', `missing join token; ${CREATE_HINT}`);
    const match = ADMIN_TOKEN.exec(presented);
    if (match) return this.consumeAdminToken(trx, match[1]!, presented);
    if (!this.bootstrapHash) {
      throw new AppError('unauthenticated', `unknown join token: not an admin join token (jt_<id>.<secret>) and no bootstrap token is configured (REMOTEGPU_JOIN_TOKEN); ${CREATE_HINT}`);
    }
    if (!secretMatchesHash(presented, this.bootstrapHash)) {
      throw new AppError('unauthenticated', `unknown join token: neither an admin join token (jt_<id>.<secret>) nor the bootstrap token (REMOTEGPU_JOIN_TOKEN); ${CREATE_HINT}`);
    }
    return { tokenId: null, requiresApproval: false };
  }

  private async consumeAdminToken(trx: Trx, id: string, presented: string): Promise<JoinTokenGrant> {
    const row = await lockJoinToken(trx, id);
    // A token that is not ours but equals the bootstrap token still counts as the bootstrap token.
    if (!row && this.deps.bootstrapToken && sameSecret(presented, this.deps.bootstrapToken)) return { tokenId: null, requiresApproval: false };
    if (!row || !secretMatchesHash(presented, row.secret_hash)) {
      this.deps.logger.warn({ tokenId: id }, 'registration refused: unknown join token');
      throw new AppError('unauthenticated', `unknown join token ${id}: deleted, or not issued by this controller; ${CREATE_HINT}`);
    }
    if (row.expired) {
      this.deps.logger.warn({ tokenId: id }, 'registration refused: join token expired');
      throw new AppError('unauthenticated', `join token ${id} expired at ${row.expires_at?.toISOString()}; ${CREATE_HINT}`);
    }
    if (row.max_uses !== null && row.uses >= row.max_uses) {
      this.deps.logger.warn({ tokenId: id, uses: row.uses }, 'registration refused: join token used up');
      throw new AppError('unauthenticated', `join token ${id} used up (${row.uses} of ${row.max_uses} uses); ${CREATE_HINT}`);
    }
    await recordJoinTokenUse(trx, id);
    return { tokenId: id, requiresApproval: row.requires_approval };
  }
}

function notFound(id: string): AppError {
  return new AppError('not_found', `join token ${id} not found; GET /api/v1/admin/join-tokens lists them`);
}
