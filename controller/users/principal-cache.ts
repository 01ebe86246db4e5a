import type { Principal } from '../access/principal.js';

/** What a valid token resolved to, remembered for a few seconds. */
export interface CachedPrincipal {
  readonly principal: Principal;
  readonly tokenId: number;
  /** When the token expires (ms since the epoch), null for never. */
  readonly expiresAt: number | null;
  /** When the token's last_used_at was last written (ms since the epoch), null for never. */
  lastUsedAt: number | null;
  /** When the row was read. */
  readonly readAt: number;
}

/**
 * Principals by token hash, kept `ttlMs` after the database said the token was valid, so that a
 * request costs no token query. Revoking a token, disabling a user (UsersService) forget theirs at
 * once in this process; another replica trusts what it read for at most `ttlMs` more. An entry is
 * stored only when nothing was forgotten since its read began (a `generation` check), so a read
 * racing a revocation cannot bring the revoked token back. Bounded: the oldest entry goes first.
 */
export class PrincipalCache {
  private readonly entries = new Map<string, CachedPrincipal>();
  private generation = 0;

  constructor(
    readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  /** The principal of a token hash read within ttlMs and not expired since, or undefined. */
  get(hash: string, now: number): CachedPrincipal | undefined {
    const e = this.entries.get(hash);
    if (!e) return undefined;
    if (now - e.readAt >= this.ttlMs || (e.expiresAt !== null && e.expiresAt <= now)) {
      this.entries.delete(hash);
      return undefined;
    }
    return e;
  }

  /** A mark to take before reading a token row; pass it to `set`. */
  mark(): number {
    return this.generation;
  }

  /** Remembers a token read after `mark`, unless something was forgotten meanwhile. */
  set(hash: string, entry: CachedPrincipal, mark: number): void {
    if (this.ttlMs <= 0 || mark !== this.generation) return;
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(hash, entry);
  }

  /** Forgets one token (revoked). Call after the revocation committed. */
  forgetToken(tokenId: number): void {
    this.forget((e) => e.tokenId === tokenId);
  }

  /** Forgets every token of a user (disabled, role changed). Call after the change committed. */
  forgetUser(userId: number): void {
    this.forget((e) => e.principal.userId === userId);
  }

  private forget(match: (e: CachedPrincipal) => boolean): void {
    this.generation++;
    for (const [hash, e] of this.entries) if (match(e)) this.entries.delete(hash);
  }
}
