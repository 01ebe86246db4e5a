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

/** Answers a success envelope with a translated message. */
export function ok<T>(c: Context, data: T, key: MessageKey = 'success', status: ContentfulStatusCode = 200) {
  return c.json({ code: 0, message: translate(key, c.req.header('accept-language')), data } satisfies Envelope<T>, status);
}

/** Answers a success envelope that has no data (`{code: 0, message}` as in the seed's action routes). */
export function okMessage(c: Context, key: MessageKey, status: ContentfulStatusCode = 200) {
  return c.json({ code: 0, message: translate(key, c.req.header('accept-language')) }, status);
}

/** Answers an error envelope for an AppError: HTTP status and `code` from the one error table. */
export function errorResponse(c: Context, err: AppError) {
  const mapping = ERROR_TABLE[err.code];
  const data = err.fields && err.fields.length > 0 ? { fields: err.fields } : null;
  return c.json({ code: mapping.api, message: err.message, data } satisfies Envelope<unknown>, mapping.http as ContentfulStatusCode);
}
