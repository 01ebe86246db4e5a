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
