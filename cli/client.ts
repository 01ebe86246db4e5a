import createClient from 'openapi-fetch';
import type { components, paths } from '../gen/openapi/api.js';
import { VERSION } from '../common/version.js';
import { ENV_CONTEXT, type ActiveContext } from './config.js';
import { CliError, EXIT, exitCodeForStatus } from './errors.js';

/** The typed REST client (openapi-fetch over the types generated from the OpenAPI document). */
export type ApiClient = ReturnType<typeof createClient<paths, 'application/json'>>;
export type Schemas = components['schemas'];

/** Seconds a plain request may take before the CLI gives up on it (exit 6). */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * A client for one context. Requests time out after 30 s (or `timeoutMs`) unless `streaming`
 * (logs -f): those end when the server ends them or the CLI is interrupted. The token is sent as
 * a bearer token and never printed.
 */
export function apiClient(ctx: ActiveContext, options: { streaming?: boolean; timeoutMs?: number } = {}): ApiClient {
  // A token that cannot go into a header would make fetch throw an error quoting the header, token
  // and all, printed as an unexpected error: refused here without showing it.
  if (!isTokenText(ctx.token)) {
    const whose = ctx.name === ENV_CONTEXT ? 'REMOTEGPU_TOKEN' : `the token of context ${JSON.stringify(ctx.name)}`;
    throw new CliError(`${whose} is not an API token (it holds a space, a line break or a character outside ASCII): run \`remotegpu login\` again`, EXIT.auth);
  }
  return createClient<paths, 'application/json'>({
    baseUrl: ctx.url.replace(/\/+$/, ''),
    headers: { authorization: `Bearer ${ctx.token}`, 'user-agent': `remotegpu-cli/${VERSION}`, 'accept-language': 'en' },
    fetch: async (request) => {
      const signal = options.streaming ? request.signal : AbortSignal.any([request.signal, AbortSignal.timeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS)]);
      try {
        return await fetch(request, { signal });
      } catch (err) {
        throw unreachable(ctx.url, err, options.timeoutMs);
      }
    },
  });
}

/** Whether `token` can be an API token: printable ASCII without spaces (what an HTTP header can carry as it is). */
export function isTokenText(token: string): boolean {
  return /^[\x21-\x7e]+$/.test(token);
}

/** The CliError for a request that got no answer: refused, unresolvable, timed out. */
export function unreachable(url: string, err: unknown, timeoutMs = REQUEST_TIMEOUT_MS): CliError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : (cause?.code ?? cause?.message ?? (err as Error).message);
  return new CliError(`cannot reach the controller at ${url}: ${why}`, EXIT.unavailable);
}

type ErrorEnvelope = { code?: number; message?: string; data?: { fields?: { field: string; message: string }[] } | null };

/**
 * The envelope's `data` of a successful answer, or a CliError built from the error envelope: its
 * message, one detail line per refused field, and the exit code for the HTTP status.
 */
export async function call<T>(request: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<NonNullable<T>> {
  const { data, error, response } = await answer(request);
  if (error !== undefined || data === undefined || data === null) throw apiError(response, error);
  return data;
}

/** For an answer without data (204: delete, unmount): resolves when it succeeded, else the CliError as in `call`. */
export async function callNoContent(request: Promise<{ error?: unknown; response: Response }>): Promise<void> {
  const { error, response } = await answer(request);
  if (error !== undefined || !response.ok) throw apiError(response, error);
}

/**
 * The request's result; an answer that is not JSON (a web page: the URL is not a controller's) or
 * that broke off while read is a CliError, not an unexpected error with a stack trace.
 */
async function answer<R>(request: Promise<R>): Promise<R> {
  try {
    return await request;
  } catch (err) {
    if (err instanceof CliError) throw err;
    if (err instanceof SyntaxError) throw new CliError('the answer is not JSON, so not the remotegpu API\'s: is the URL that of a remotegpu controller (`remotegpu context ls`)?', EXIT.error);
    throw new CliError(`the controller's answer broke off: ${(err as Error).message}`, EXIT.unavailable);
  }
}

/** The CliError for an error answer (an envelope when the API answered it, else the status line). */
export function apiError(response: Response, body: unknown): CliError {
  const envelope = (typeof body === 'object' && body !== null ? body : {}) as ErrorEnvelope;
  const message = envelope.message || `${response.status} ${response.statusText}`.trim();
  const fields = envelope.data?.fields ?? [];
  const hint = response.status === 401 ? ' (run `remotegpu login` again)' : '';
  return new CliError(
    `${message}${hint}`,
    exitCodeForStatus(response.status),
    fields.filter((f) => !message.includes(f.message)).map((f) => `${f.field}: ${f.message}`),
  );
}
