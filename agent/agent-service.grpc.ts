import { Metadata, Server, ServerCredentials, type ServerDuplexStream, type ServerWritableStream } from '@grpc/grpc-js';
import { AppError } from '../common/errors.js';
import { PORT_IN_USE_TRAILER, bearerFromMetadata, shutdownServer, toGrpcError } from '../common/grpc.js';
import { describeIdentity, peerOf, type ReloadableServerCredentials } from '../common/grpc-tls.js';
import { sameSecret } from '../common/secrets.js';
import type { Logger } from '../common/logger.js';
import { AgentServiceService, type AgentServiceServer, type ExecInput, type ExecOutput, type StreamLogsRequest, type LogLine } from '../gen/remotegpu/v1/agent.js';
import { openTerminal, type TerminalSession } from './exec.js';
import { logLineToProto, specFromProto, statusToProto } from './convert.js';
import { RUNTIME_TO_APP_CODE, RuntimeError } from './runtime/errors.js';
import type { ContainerRuntime, ObservedStatus } from './runtime/types.js';
import type { AgentMetrics } from './metrics.js';

/** What the AgentService needs besides the runtime. */
export interface AgentServiceDeps {
  readonly runtime: ContainerRuntime;
  readonly logger: Logger;
  /** The agent's own environment (AgentConfig.processEnv): `docker exec` terminals take PATH and DOCKER_HOST from it. */
  readonly processEnv: NodeJS.ProcessEnv;
  /** Who may call: the controller's certificate (mutual TLS), or its bearer credential in insecure mode. */
  readonly auth: AgentServiceAuth;
  /** Whether SSH answered in this environment since its container last started. */
  readonly sshReady: (envId: string) => boolean;
  /** Told after every successful apply (to watch for SSH readiness and report soon). */
  readonly applied: (status: ObservedStatus, spec: { ports: readonly { name: string; hostPort: number }[] }) => void;
  /** Records each unary call's duration and outcome. */
  readonly metrics?: AgentMetrics | undefined;
}

/**
 * How callers are authenticated. 'mtls': the server asks every client for a certificate of the
 * cluster CA (the credentials carry this host's certificate, none until registered, so that nothing
 * connects before) and only the controller's identity may call. 'bearer' (REMOTEGPU_GRPC_INSECURE=1):
 * plaintext, every call carries the host credential (undefined until registered: all refused).
 */
export type AgentServiceAuth =
  | { readonly kind: 'mtls'; readonly credentials: ReloadableServerCredentials }
  | { readonly kind: 'bearer'; readonly credential: () => string | undefined };

/** What the auth check reads of a call. */
type CallAuth = Parameters<typeof peerOf>[0] & { readonly metadata: Metadata };

/** The AgentService listening. */
export interface ListeningAgentService {
  /** The port bound (the one in `listen`, or the one picked for port 0). */
  readonly port: number;
  /** Lets calls in flight end for up to 2 s, then cuts them. */
  shutdown(): Promise<void>;
}

/** Serves the AgentService on `listen`, HOST:PORT: mutual TLS, or plaintext with a bearer credential (deps.auth). */
export async function serveAgentService(listen: string, deps: AgentServiceDeps): Promise<ListeningAgentService> {
  const server = new Server();
  server.addService(AgentServiceService, agentService(deps));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, deps.auth.kind === 'mtls' ? deps.auth.credentials : ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(new Error(`cannot listen on ${listen}: ${err.message}`)) : resolve(p),
    ),
  );
  return { port, shutdown: () => shutdownServer(server) };
}

/**
 * The AgentService: thin. It checks the caller (authorizeCall), converts proto to domain, calls the
 * runtime and converts errors (RuntimeError → AppError → gRPC status with Docker's message).
 */
export function agentService(deps: AgentServiceDeps): AgentServiceServer {
  const authorize = (call: CallAuth) => authorizeCall(deps.auth, call);
  const unary = <Req, Res>(name: string, fn: (req: Req) => Promise<Res>) =>
    ((call: CallAuth & { request: Req }, cb: (err: unknown, res?: Res) => void) => {
      const started = performance.now();
      const done = (code: string) => deps.metrics?.call(name, code, (performance.now() - started) / 1000);
      Promise.resolve()
        .then(() => authorize(call))
        .then(() => fn(call.request))
        .then(
          (res) => {
            done('ok');
            cb(null, res);
          },
          (err: unknown) => {
            const app = toAppError(err);
            done(app.code);
            if (app.code === 'internal') deps.logger.error({ err, rpc: name }, 'AgentService call failed');
            cb(toWireError(err, app));
          },
        );
    }) as never;

  return {
    applyEnvironment: unary('ApplyEnvironment', async (req: { spec?: Parameters<typeof specFromProto>[0] }) => {
      if (!req.spec) throw new AppError('invalid_argument', 'spec is required');
      const spec = specFromProto(req.spec);
      const result = await deps.runtime.apply(spec);
      deps.applied(result.status, spec);
      deps.logger.info({ envId: spec.envId, action: result.action, state: result.status.state }, 'environment applied');
      return { status: statusToProto(result.status, deps.sshReady(spec.envId)), action: result.action };
    }),
    stopEnvironment: unary('StopEnvironment', async (req: { envId: string; timeoutS: number }) => {
      const status = await deps.runtime.stop(req.envId, req.timeoutS);
      return { status: statusToProto(status, false) };
    }),
    removeEnvironment: unary('RemoveEnvironment', async (req: { envId: string }) => ({ removed: await deps.runtime.remove(req.envId) })),
    inspectEnvironment: unary('InspectEnvironment', async (req: { envId: string }) => {
      const status = await deps.runtime.inspect(req.envId);
      return { status: statusToProto(status, deps.sshReady(req.envId)) };
    }),
    streamLogs: (call: ServerWritableStream<StreamLogsRequest, LogLine>) => void streamLogs(call, deps, authorize),
    exec: (call: ServerDuplexStream<ExecInput, ExecOutput>) => exec(call, deps, authorize),
  };
}

async function streamLogs(call: ServerWritableStream<StreamLogsRequest, LogLine>, deps: AgentServiceDeps, authorize: (call: CallAuth) => void) {
  const abort = new AbortController();
  call.on('cancelled', () => abort.abort());
  call.on('close', () => abort.abort());
  try {
    authorize(call);
    const { envId, tailLines, follow } = call.request;
    for await (const line of deps.runtime.logs(envId, { tail: tailLines, follow, signal: abort.signal })) {
      if (abort.signal.aborted) break;
      if (!call.write(logLineToProto(line))) {
        // A cancelled call never drains: wait for whichever comes first.
        await new Promise<void>((resolve) => {
          const done = () => {
            call.off('drain', done);
            abort.signal.removeEventListener('abort', done);
            resolve();
          };
          call.once('drain', done);
          abort.signal.addEventListener('abort', done, { once: true });
        });
      }
    }
    if (!abort.signal.aborted) call.end();
  } catch (err) {
    if (!abort.signal.aborted) call.emit('error', toWireError(err, toAppError(err)));
  } finally {
    abort.abort();
  }
}

function exec(call: ServerDuplexStream<ExecInput, ExecOutput>, deps: AgentServiceDeps, authorize: (call: CallAuth) => void) {
  let session: TerminalSession | undefined;
  const fail = (err: unknown) => {
    session?.kill();
    call.emit('error', toWireError(err, toAppError(err)));
  };
  try {
    authorize(call);
  } catch (err) {
    fail(err);
    return;
  }
  call.on('data', (msg: ExecInput) => {
    const input = msg.input;
    if (!input) return;
    if (input.$case === 'start') {
      if (session) return fail(new AppError('invalid_argument', 'exec already started'));
      try {
        session = openTerminal(deps.runtime.execArgs(input.value.envId, input.value.command), { cols: input.value.cols, rows: input.value.rows }, deps.processEnv);
      } catch (err) {
        return fail(err);
      }
      // Backpressure: while the controller has not taken what was written, the pty is not read
      // (a `yes` in the terminal then blocks instead of growing this process's memory).
      const pty = session;
      call.on('drain', () => pty.resume());
      pty.onData((data) => {
        if (!call.write({ output: { $case: 'data', value: data } })) pty.pause();
      });
      session.onExit((code) => {
        call.write({ output: { $case: 'exitCode', value: code } });
        call.end();
      });
    } else if (!session) {
      fail(new AppError('invalid_argument', 'the first Exec message must be start'));
    } else if (input.$case === 'stdin') {
      session.write(input.value);
    } else if (input.$case === 'resize') {
      session.resize(input.value.cols, input.value.rows);
    }
  });
  call.on('end', () => session?.kill());
  call.on('cancelled', () => session?.kill());
}

/** Throws AppError unauthenticated/permission_denied unless the controller makes the call. */
export function authorizeCall(auth: AgentServiceAuth, call: CallAuth): void {
  if (auth.kind === 'bearer') {
    const expected = auth.credential();
    const presented = bearerFromMetadata(call.metadata);
    if (!expected || !presented || !sameSecret(presented, expected)) throw new AppError('unauthenticated', 'missing or wrong host credential');
    return;
  }
  const peer = peerOf(call);
  if (!peer) throw new AppError('unauthenticated', 'a client certificate issued by the cluster CA is required');
  if (peer.identity?.kind !== 'controller') {
    throw new AppError('permission_denied', `only the controller may call the agent; the client presents ${describeIdentity(peer.identity)}`);
  }
}

/**
 * The gRPC error sent to the controller. Docker's own words travel even for internal faults (the
 * controller shows them as the environment's status reason); other internal faults stay generic.
 */
function toWireError(err: unknown, app: AppError) {
  const wire = toGrpcError(app);
  if (!(err instanceof RuntimeError)) return wire;
  if (err.code === 'port_conflict' && err.port !== undefined) {
    const metadata = new Metadata();
    metadata.set(PORT_IN_USE_TRAILER, String(err.port));
    return Object.assign(wire, { details: err.message, message: err.message, metadata });
  }
  return Object.assign(wire, { details: err.message, message: err.message });
}

/** RuntimeError → AppError with the product-wide code; AppError passes; anything else is internal. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof RuntimeError) return new AppError(RUNTIME_TO_APP_CODE[err.code], err.message, { cause: err });
  return new AppError('internal', err instanceof Error ? err.message : String(err), { cause: err });
}
