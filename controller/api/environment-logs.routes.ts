import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Principal } from '../access/principal.js';
import type { EnvWithHost } from '../environments/environments.repo.js';
import { formatLogLine, type EnvironmentLogs } from '../environments/logs.js';
import type { EnvironmentsService } from '../environments/environments.service.js';
import { authenticated, principalOf } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { EnvParams, LogsQuery } from './environments.schemas.js';
import { envelope, errors, reply } from './schemas.js';

/** How often an idle event stream sends a comment, so proxies keep it open. */
const KEEP_ALIVE_MS = 15_000;

const logsRoute = createRoute({
  method: 'get',
  path: '/environments/{env_id}/logs',
  tags: ['environments'],
  summary: 'Platform events and container output; follow=true streams text/event-stream',
  request: { params: EnvParams, query: LogsQuery },
  responses: {
    200: {
      description: 'logs (JSON), or an event stream with one event per line when follow=true',
      content: { 'application/json': { schema: envelope(z.object({ logs: z.array(z.string()) })) }, 'text/event-stream': { schema: z.string() } },
    },
    ...errors(400, 401, 404),
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
    if (follow) return followLogs(c, services.environments, services.environmentLogs, p, env, lines);
    const entries = await services.environmentLogs.tail(env, lines);
    return reply(c, { logs: entries.map(formatLogLine) });
  });
  return app;
}

/** Streams the last `lines` and then new ones until the client leaves or the environment is deleted. */
function followLogs(c: Context, environments: EnvironmentsService, logs: EnvironmentLogs, p: Principal, env: EnvWithHost, lines: number) {
  return streamSSE(c, async (stream) => {
    const abort = new AbortController();
    stream.onAbort(() => abort.abort());
    const keepAlive = setInterval(() => void stream.write(': keep-alive\n\n').catch(() => abort.abort()), KEEP_ALIVE_MS);
    const stillVisible = async () => environments.get(p, env.id).then(() => true, () => false);
    try {
      for await (const entry of logs.follow(env, lines, abort.signal, stillVisible)) {
        await stream.writeSSE({ data: formatLogLine(entry) });
      }
      if (!abort.signal.aborted) await stream.writeSSE({ event: 'end', data: 'environment deleted' });
    } finally {
      clearInterval(keepAlive);
    }
  });
}
