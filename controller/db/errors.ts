import type { Logger } from '../../common/logger.js';

// PostgreSQL error codes (SQLSTATE) that services turn into domain errors. Both `pg` and PGlite
// report them in `code`; the constraint name is in `constraint`.
const UNIQUE_VIOLATION = '23505';
const FOREIGN_KEY_VIOLATION = '23503';
// A NUL (U+0000) in text: 22021 character_not_in_repertoire (PostgreSQL, PGlite), 22P05
// untranslatable_character (U+0000 in a json value).
const UNSTORABLE_TEXT = new Set(['22021', '22P05']);

interface PgLikeError {
  code?: unknown;
  constraint?: unknown;
}

/** True when `err` is a unique-constraint violation (of `constraint`, when given). */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  return matches(err, UNIQUE_VIOLATION, constraint);
}

/** True when `err` is a foreign-key violation (of `constraint`, when given). */
export function isForeignKeyViolation(err: unknown, constraint?: string): boolean {
  return matches(err, FOREIGN_KEY_VIOLATION, constraint);
}

/** True when `err` is PostgreSQL refusing a character of a text value (a NUL): the request's fault, not the server's. */
export function isUnstorableText(err: unknown): boolean {
  return typeof err === 'object' && err !== null && UNSTORABLE_TEXT.has(String((err as PgLikeError).code));
}

function matches(err: unknown, code: string, constraint: string | undefined): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as PgLikeError;
  return e.code === code && (constraint === undefined || e.constraint === constraint);
}

// PostgreSQL rolled the transaction back to resolve a conflict with a concurrent one: 40P01
// deadlock_detected, 40001 serialization_failure. Nothing was changed; the same request may be sent again.
const CONFLICT_CODES = new Set(['40P01', '40001']);

/** True when `err` is PostgreSQL ending a transaction to resolve a conflict (deadlock, serialization): retry it. */
export function isTransactionConflict(err: unknown): boolean {
  return typeof err === 'object' && err !== null && CONFLICT_CODES.has(String((err as PgLikeError).code));
}

// The database is away (not the request's fault, nor a bug): PostgreSQL shutting down, restarting or
// starting up (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 53300
// too_many_connections), connection exceptions (class 08), and the client's own socket failures.
const UNAVAILABLE_CODES = new Set(['57P01', '57P02', '57P03', '53300']);
const UNAVAILABLE_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);
// Errors `pg` and `pg-pool` raise without a code: a connection that ended (also the server's
// goodbye after a fast shutdown), a client that already failed, and the pool's connect timeout.
const UNAVAILABLE_MESSAGES = [
  /^Connection terminated/,
  /not queryable/,
  /^timeout exceeded when trying to connect/,
  /^Client was closed and is not queryable/,
];

/**
 * True when `err` says the database cannot be reached right now (a restart, a stopped server, a
 * lost connection, no free connection in time): the caller should answer 503 and retry later, not
 * report a bug. Looks into `cause` and into the parts of an AggregateError (a refused connection on
 * every address of a name).
 */
export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 5) return false;
  const e = err as PgLikeError & { message?: unknown; cause?: unknown; errors?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  if (UNAVAILABLE_CODES.has(code) || code.startsWith('08') || UNAVAILABLE_SOCKET_CODES.has(code)) return true;
  if (typeof e.message === 'string' && UNAVAILABLE_MESSAGES.some((re) => re.test(e.message as string))) return true;
  if (Array.isArray(e.errors) && e.errors.some((inner) => isDatabaseUnavailable(inner, depth + 1))) return true;
  return e.cause !== undefined && isDatabaseUnavailable(e.cause, depth + 1);
}

/**
 * Logs a failure of a background loop (`what`: "reconcile pass", …): the database being away as
 * one line without a stack (the loop goes on and recovers with it), anything else at `level` with
 * its error.
 */
export function logLoopFailure(logger: Logger, err: unknown, what: string, level: 'warn' | 'error' = 'error', context: object = {}): void {
  if (isDatabaseUnavailable(err)) logger.warn({ ...context, reason: err instanceof Error ? err.message : String(err) }, `${what} failed: database unavailable; retrying`);
  else logger[level]({ ...context, err }, `${what} failed`);
}
