import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { formatLogLine, type LogFollow } from '../environments/logs.js';
import { hashToken } from '../users/tokens.js';
import { authenticated, requestToken, principalOf } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { EnvParams, LogsQuery } from './environments.schemas.js';
import { envelope, errors, reply } from './schemas.js';

/** How often an idle event stream sends a comment, so proxies keep it open. */
const KEEP_ALIVE_MS = 15_000;
/** How long after the platform ended a follow a client that does not read is kept before it is disconnected. */
const END_WRITE_MS = 5_000;

const LogLines = z
  .object({
    logs: z.array(z.string()).openapi({
      description: 'oldest first: platform events and container output in time order, each `[YYYY-MM-DD HH:MM:SS] text`',
      example: ['[2024-05-01 12:00:00] Container started', '[2024-05-01 12:00:01] SSH service ready'],
    }),
  })
  .openapi('EnvironmentLogs');

const logsRoute = createRoute({
  method: 'get',
  path: '/environments/{env_id}/logs',
  tags: ['environments'],
  operationId: 'getEnvironmentLogs',
  summary: 'Platform events and container output; follow=true streams text/event-stream',
  request: { params: EnvParams, query: LogsQuery },
  responses: {
    // Two media types, chosen by `follow` (not by Accept): a client typed for application/json reads
    // the JSON body as it is; one that follows reads the response as a stream of events.
    200: {
      description:
        'Without follow (or follow=false): application/json, the last `lines` lines. With follow=true: text/event-stream, the last `lines` lines and then each new one as it comes, until the client leaves or the platform ends the follow.',
      content: {
        'application/json': { schema: envelope(LogLines) },
        'text/event-stream': {
          schema: z.string().openapi({
            description:
              'Server-sent events: one `data:` event per log line, `: keep-alive` comments while idle, and when the platform ends the follow (environment deleted, access or token lost) a last `event: end` whose data is the reason.',
            example: 'data: [2024-05-01 12:00:00] Container started\n\n',
          }),
        },
      },
    },
    ...errors(400, 401, 404, 429),
  },
});

/** `GET /environments/{env_id}/logs`: the last lines as JSON, or followed as server-sent events. */
export function environmentLogsRoutes({ services }: ApiDeps) {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi({ ...logsRoute, middleware: authenticated(services.users) }, async (c) => {
    const p = principalOf(c);
    const { env_id } = c.req.valid('param');
    const { lines, follow } = c.req.valid('query');
    const env = await services.environments.get(p, env_id);
    if (follow) {
      // Counted against the caller's limit before the stream starts, so that a refusal is a 429 envelope.
      const abort = new AbortController();
      const caller = { principal: p, tokenHash: hashToken(requestToken(c) ?? '') };
      return followLogs(c, services.environmentLogs.openFollow(caller, env, lines, abort.signal), abort);
    }
    const entries = await services.environmentLogs.tail(env, lines);
    return reply(c, { logs: entries.map(formatLogLine) });
  });
  return app;
}

/**
 * Streams the follow's lines. Each write waits for the client to take it (backpressure through to
 * the agent). When the platform ends the follow (environment deleted, access or token lost) the
 * last event is `event: end` with the reason; a client that has not read up to it END_WRITE_MS
 * later is disconnected.
 */
function followLogs(c: Context, follow: LogFollow, abort: AbortController) {
  return streamSSE(c, async (stream) => {
    stream.onAbort(() => abort.abort());
    let writing = false;
    const keepAlive = setInterval(() => {
      if (writing) return;
      writing = true;
      void stream.write(': keep-alive\n\n').finally(() => (writing = false));
    }, KEEP_ALIVE_MS);
    // Once the platform ended the follow, a client that does not read what is left is dropped.
    let finished = false;
    const onEnd = () => setTimeout(() => !finished && disconnect(c, stream), END_WRITE_MS).unref();
    follow.stopped.addEventListener('abort', onEnd, { once: true });
    try {
      for await (const entry of follow.entries()) {
        writing = true;
        await stream.writeSSE({ data: formatLogLine(entry) });
        writing = false;
      }
      const reason = follow.endReason;
      if (reason !== undefined && !abort.signal.aborted) await stream.writeSSE({ event: 'end', data: reason });
    } finally {
      finished = true;
      follow.stopped.removeEventListener('abort', onEnd);
      clearInterval(keepAlive);
      follow.close();
    }
  });
}

/** Drops the connection of a client that stopped reading (the response cannot end while the socket is full). */
function disconnect(c: Context, stream: { abort(): void }): void {
  stream.abort();
  (c.env as { outgoing?: { destroy?: () => void } } | undefined)?.outgoing?.destroy?.();
}
