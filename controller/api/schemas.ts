import { z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { totalPages, type PageRequest } from '../db/pagination.js';
import { messageEnvelope, successEnvelope } from './envelope.js';
import type { MessageKey } from './messages.js';

// Zod pieces shared by the route modules: ids in paths, pagination, envelopes and the error
// responses every authenticated route documents.

const MAX_ID = 2_147_483_647; // ids are PostgreSQL integers

/**
 * A positive integer id in the path, named `name` in the OpenAPI document. Anything else ("abc",
 * "0", "-1", "1.5", beyond 2^31-1) fails validation with "must be a positive integer".
 */
export function pathId(name: string) {
  return positiveIntId().openapi({ param: { name, in: 'path' }, type: 'integer', minimum: 1, example: 1 });
}

/** A positive PostgreSQL integer id given as text (a path or query parameter); each caller documents it. */
export function positiveIntId() {
  return z
    .string()
    .regex(/^[1-9][0-9]{0,9}$/, 'must be a positive integer')
    .transform(Number)
    .pipe(z.number().int().max(MAX_ID, 'must be a positive integer below 2^31'));
}

// Control characters (C0, DEL, C1). PostgreSQL text cannot hold U+0000 at all (a NUL that reached
// a query was a 500); the others garble terminals and logs. Names and other one-line text refuse
// all of them; descriptions keep tab and line breaks.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS_BUT_LINE_BREAKS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
/** The field message for text holding a control character. */
export const CONTROL_CHAR_MESSAGE = 'must not contain control characters (such as NUL, escape or a line break)';

/** One-line text (names, references, ids): `schema` refusing every control character with a 400 naming the field. */
export function singleLine<T extends z.ZodString>(schema: T): T {
  return schema.refine((s) => !CONTROL_CHARS.test(s), CONTROL_CHAR_MESSAGE);
}

/** Free text (descriptions): `schema` refusing control characters other than tab, CR and LF. */
export function multiLine<T extends z.ZodString>(schema: T): T {
  return schema.refine((s) => !CONTROL_CHARS_BUT_LINE_BREAKS.test(s), 'must not contain control characters other than tab and line breaks (such as NUL or escape)');
}

/** An integer query parameter within [min, max], `fallback` when absent. */
function intQuery(name: string, min: number, max: number, fallback: number) {
  const message = `must be an integer from ${min} to ${max}`;
  return z
    .string()
    .regex(/^[0-9]{1,9}$/, message)
    .transform(Number)
    .pipe(z.number().int().min(min, message).max(max, message))
    .optional()
    .default(fallback)
    .openapi({ param: { name, in: 'query' }, type: 'integer', minimum: min, maximum: max, default: fallback });
}

/** `page` (≥ 1, default 1) and `page_size` (1–100, default 20), as in the seed's list routes. */
export const PaginationQuery = z.object({
  page: intQuery('page', 1, 1_000_000, 1),
  page_size: intQuery('page_size', 1, 100, 20),
});

/** The service-side page request for a validated pagination query. */
export function pageRequest(query: { page: number; page_size: number }): PageRequest {
  return { page: query.page, pageSize: query.page_size };
}

/** The seed's list shape for one page of a service (a `Page`): `{items, pagination: {page, page_size, total, total_pages}}`. */
export function paginated<T, U>(page: { readonly items: readonly T[]; readonly total: number }, request: PageRequest, toJson: (item: T) => U) {
  return {
    items: page.items.map(toJson),
    pagination: { page: request.page, page_size: request.pageSize, total: page.total, total_pages: totalPages(page.total, request.pageSize) },
  };
}

const PaginationSchema = z.object({
  page: z.number().int(),
  page_size: z.number().int(),
  total: z.number().int(),
  total_pages: z.number().int(),
});

/** Envelope schema around `data`. */
export function envelope<T extends z.ZodType>(data: T) {
  return z.object({ code: z.number().int().openapi({ example: 0 }), message: z.string(), data });
}

/** Envelope schema around one page of `item`. */
export function pageEnvelope<T extends z.ZodType>(item: T) {
  return envelope(z.object({ items: z.array(item), pagination: PaginationSchema }));
}

const ErrorEnvelope = z
  .object({
    code: z.number().int().openapi({ example: 40001 }),
    message: z.string(),
    data: z.object({ fields: z.array(z.object({ field: z.string(), message: z.string() })) }).nullable(),
  })
  .openapi('Error');

const ERROR_DESCRIPTIONS = {
  400: 'invalid request (40001 a field, 40002 malformed JSON); data.fields names each bad field',
  401: 'missing, invalid, revoked or expired token (40101)',
  403: 'the route needs the admin role (40301)',
  404: 'not found (40401)',
  409: 'conflict: wrong state (40901), no capacity (40902), already exists (40903) or quota exceeded (40904)',
  429: 'too many requests: the caller already has as many open log follows as allowed (42901)',
} as const;

type ErrorStatus = keyof typeof ERROR_DESCRIPTIONS;

/** OpenAPI response entries for the given error statuses. */
export function errors<S extends ErrorStatus>(...statuses: S[]) {
  const out = {} as Record<S, { description: string; content: { 'application/json': { schema: typeof ErrorEnvelope } } }>;
  for (const s of statuses) out[s] = { description: ERROR_DESCRIPTIONS[s], content: { 'application/json': { schema: ErrorEnvelope } } };
  return out;
}

/** A required JSON request body. */
export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { 'application/json': { schema } } } as const;
}

/** A JSON success response. */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } } as const;
}

/** The 204 answer of DELETE routes (no body). */
export const NoContent = { description: 'done; no body' } as const;

/**
 * The 200 success envelope around `data`, typed with the literal status so the route's declared
 * response schema checks the data at compile time.
 */
export function reply<T>(c: Context, data: T, key: MessageKey = 'success') {
  return c.json(successEnvelope(c, data, key), 200);
}

/** The 201 Created success envelope, typed like `reply`. */
export function replyCreated<T>(c: Context, data: T, key: MessageKey) {
  return c.json(successEnvelope(c, data, key), 201);
}

/** The 200 answer of action routes: `{code: 0, message}` without data. */
export function replyMessage(c: Context, key: MessageKey) {
  return c.json(messageEnvelope(c, key), 200);
}

/** The schema of `replyMessage`'s answer. */
export const MessageOnly = z.object({ code: z.literal(0), message: z.string() });

/** The 204 answer with an empty body. */
export function noContent(c: Context) {
  return c.body(null, 204);
}

/** A timestamp in an answer: ISO 8601 text as `iso` writes it (`format: date-time` in the document). */
export function dateTime() {
  return z.string().openapi({ format: 'date-time', example: '2024-05-01T12:00:00.000Z' });
}

/** ISO 8601 text of a timestamp (null stays null). */
export function iso(date: Date): string;
export function iso(date: Date | null): string | null;
export function iso(date: Date | null): string | null {
  return date ? date.toISOString() : null;
}
