import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { AppError, ERROR_TABLE } from '../../common/errors.js';
import { translate, type MessageKey } from './messages.js';

/** The contract's envelope: `{code, message, data}`; `code` 0 means success. */
export interface Envelope<T> {
  code: number;
  message: string;
  data: T;
}

/** A success envelope with `key`'s message in the language the request prefers. */
export function successEnvelope<T>(c: Context, data: T, key: MessageKey = 'success'): Envelope<T> {
  return { code: 0, message: translate(key, c.req.header('accept-language')), data };
}

/** A success envelope that has no data (`{code: 0, message}` as in the seed's action routes). */
export function messageEnvelope(c: Context, key: MessageKey): { code: 0; message: string } {
  return { code: 0, message: translate(key, c.req.header('accept-language')) };
}

/** Answers an error envelope for an AppError: HTTP status and `code` from the one error table. */
export function errorResponse(c: Context, err: AppError) {
  const mapping = ERROR_TABLE[err.code];
  const data = err.fields && err.fields.length > 0 ? { fields: err.fields } : null;
  return c.json({ code: mapping.api, message: err.message, data } satisfies Envelope<unknown>, mapping.http as ContentfulStatusCode);
}

/** Seconds a client should wait before retrying while the database is away (the `Retry-After` header). */
export const RETRY_AFTER_S = 2;

/**
 * The 503 (50301 service_unavailable) answered while the database does not answer: an outage, not a
 * bug. It carries `Retry-After` (seconds); the controller recovers by itself once the database is back.
 */
export function serviceUnavailableResponse(c: Context, message = 'the database is unavailable; retry shortly') {
  c.header('Retry-After', String(RETRY_AFTER_S));
  return errorResponse(c, new AppError('service_unavailable', message));
}
