import { upgradeWebSocket, type WebSocketLike } from '@hono/node-server';
import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { WSContext } from 'hono/ws';
import type { WebSocket } from 'ws';
import { AppError } from '../../common/errors.js';
import type { FollowCaller } from '../environments/log-follows.js';
import type { TerminalSession, TerminalPeer } from '../environments/terminal-session.js';
import type { ControllerServices } from '../services.js';
import { hashToken } from '../users/tokens.js';
import { authenticated, bearerToken, principalOf, requestToken } from './auth.js';
import type { ApiDeps, AppEnv } from './deps.js';
import { EnvParams } from './environments.schemas.js';
import { dateTime, envelope, errors, jsonResponse, replyCreated } from './schemas.js';

const TerminalTicket = z.object({
  ticket: z.string().openapi({ description: 'Single use; pass it as ?ticket= when opening the terminal WebSocket', example: 'rgt_4Vn…' }),
  expires_at: dateTime().openapi({ description: '30 s after it was made' }),
});

const ticketRoute = createRoute({
  method: 'post',
  path: '/environments/{env_id}/terminal/ticket',
  tags: ['environments'],
  operationId: 'createTerminalTicket',
  summary: 'A single-use, 30-second ticket that opens the terminal WebSocket (GET /environments/{env_id}/terminal?ticket=…)',
  description:
    'Browsers cannot set an Authorization header on a WebSocket: they ask for a ticket first. It is bound to the caller, their token (revoking the token revokes the ticket) and the environment. 409 when the environment is not running, 429 when the caller has too many terminals open.',
  request: { params: EnvParams },
  responses: { 201: jsonResponse(envelope(TerminalTicket), 'the ticket'), ...errors(400, 401, 404, 409, 429) },
});

/** Size of the terminal when it opens (query cols, rows). */
const Size = z.object({
  cols: z.coerce.number().int().min(1).max(1000).default(80),
  rows: z.coerce.number().int().min(1).max(1000).default(24),
});

/**
 * `POST /environments/{env_id}/terminal/ticket` and `GET /environments/{env_id}/terminal`, which
 * upgrades to a WebSocket bridged to the agent's Exec stream (protocol: README, "Terminal").
 */
export function environmentTerminalRoutes({ services, logger }: ApiDeps) {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi({ ...ticketRoute, middleware: authenticated(services.users) }, async (c) => {
    const { env_id } = c.req.valid('param');
    const caller = { principal: principalOf(c), tokenHash: hashToken(requestToken(c) ?? '') };
    const { ticket, expiresAt } = await services.terminals.issueTicket(caller, env_id);
    return replyCreated(c, { ticket, expires_at: expiresAt.toISOString() }, 'created');
  });
  app.get('/environments/:env_id/terminal', async (c) => {
    if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') {
      throw new AppError('invalid_argument', 'this route opens a WebSocket: connect with a WebSocket client (Upgrade: websocket)');
    }
    const envId = c.req.param('env_id');
    const size = Size.safeParse({ cols: c.req.query('cols'), rows: c.req.query('rows') });
    if (!size.success) throw new AppError('invalid_argument', 'cols and rows must be integers from 1 to 1000');
    const flow = c.req.query('flow');
    if (flow !== undefined && flow !== 'ack') throw new AppError('invalid_argument', 'flow must be "ack" (the client acknowledges output) or absent');
    const caller = await terminalCaller(c, services, envId);
    const env = await services.terminals.prepare(caller, envId);
    let session: TerminalSession | undefined;
    return upgradeWebSocket(
      c,
      {
        onOpen: (_e, ws) => {
          session = services.terminals.sessions.open(caller, env, peerOf(ws), size.data, flow === 'ack');
        },
        onMessage: (e) => {
          if (!session) return;
          if (typeof e.data === 'string') controlMessage(session, e.data);
          else if (e.data instanceof ArrayBuffer) session.input(Buffer.from(e.data));
        },
        onClose: () => session?.clientClosed(),
      },
      // A fault in a handler: logged through the logger (never the URL: it may hold the ticket), not on stderr.
      { onError: (err) => logger.warn({ envId, err: err instanceof Error ? err.message : String(err) }, 'terminal: WebSocket handler failed') },
    );
  });
  return app;
}

/**
 * Who opens the terminal: the ticket's caller (?ticket=), else the bearer token, else the console's
 * session cookie, which only counts from the controller's own pages (Origin), so another site cannot
 * open a terminal in a signed-in browser. 401 when none is valid, 403 for a foreign Origin.
 */
async function terminalCaller(c: Context, services: ControllerServices, envId: string): Promise<FollowCaller> {
  const ticket = c.req.query('ticket');
  if (ticket) return services.terminals.redeem(ticket, envId);
  const token = requestToken(c);
  if (!token) throw new AppError('unauthenticated', 'missing credentials: pass ?ticket= (POST .../terminal/ticket), or send "Authorization: Bearer <token>"');
  if (!bearerToken(c) && c.req.header('origin') !== new URL(c.req.url).origin) {
    throw new AppError('permission_denied', 'a terminal opened with the console session must come from the console itself (Origin header)');
  }
  const principal = await services.users.authenticate(token);
  if (!principal) throw new AppError('unauthenticated', 'invalid, revoked or expired API token');
  return { principal, tokenHash: hashToken(token) };
}

/**
 * A JSON control message from the client: {"type":"resize","cols":C,"rows":R}, or (with ?flow=ack)
 * {"type":"ack","bytes":N} once it processed N more bytes of output; anything else is ignored.
 */
function controlMessage(session: TerminalSession, text: string): void {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return;
  }
  if (typeof msg !== 'object' || msg === null) return;
  const m = msg as { type?: unknown; cols?: unknown; rows?: unknown; bytes?: unknown };
  if (m.type === 'ack' && Number.isSafeInteger(m.bytes) && (m.bytes as number) > 0) return session.ack(m.bytes as number);
  const size = Size.safeParse({ cols: m.cols, rows: m.rows });
  if (m.type === 'resize' && size.success && m.cols !== undefined && m.rows !== undefined) session.resize(size.data.cols, size.data.rows);
}

/** The WebSocket as a session drives it (the `ws` socket under Hono's context). */
function peerOf(ctx: WSContext<WebSocketLike>): TerminalPeer {
  // listenHttp's WebSocketServer is the `ws` package's: its sockets are ws.WebSocket.
  const ws = ctx.raw as unknown as WebSocket;
  return {
    sendOutput: (data, sent) => ws.send(data, { binary: true }, () => sent()),
    sendControl: (message) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
    },
    close: (code, reason) => {
      ws.resume(); // input paused for a slow agent: the client's close frame must still be read
      ws.close(code, reason);
    },
    pauseInput: () => ws.pause(),
    resumeInput: () => ws.resume(),
  };
}
