import { Metadata, status as GrpcStatus, type Server, type ServiceError, type ServerErrorResponse } from '@grpc/grpc-js';
import { AppError, ERROR_TABLE, codeForGrpcStatus } from './errors.js';

/**
 * Trailer of an agent's error when a host port a spec publishes is taken on the host: the port,
 * so the controller can move the environment to another one.
 */
export const PORT_IN_USE_TRAILER = 'remotegpu-port-in-use';

/** Metadata carrying `authorization: Bearer <secret>`, used on every call between controller and agent. */
export function bearerMetadata(secret: string): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${secret}`);
  return md;
}

/** The bearer secret of a call, or '' when there is none. */
export function bearerFromMetadata(md: Metadata): string {
  const value = md.get('authorization')[0];
  if (typeof value !== 'string') return '';
  const match = /^Bearer\s+(\S+)$/i.exec(value.trim());
  return match?.[1] ?? '';
}

/** Turns any thrown value into the gRPC error sent to the peer (internal faults without detail). */
export function toGrpcError(err: unknown): ServerErrorResponse {
  if (err instanceof AppError) {
    return Object.assign(new Error(err.message), { code: ERROR_TABLE[err.code].grpc, details: err.message });
  }
  return Object.assign(new Error('internal error'), { code: GrpcStatus.INTERNAL, details: 'internal error' });
}

/** Turns an error received from a gRPC peer into an AppError carrying the peer's message. */
export function fromGrpcError(err: unknown, what: string): AppError {
  const e = err as Partial<ServiceError>;
  if (typeof e?.code === 'number') {
    const code = codeForGrpcStatus(e.code);
    return new AppError(code, `${what}: ${e.details || e.message || 'unknown error'}`, { cause: err });
  }
  return new AppError('internal', `${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/** Lets calls in flight end for up to `graceMs`, then cuts them. */
export function shutdownServer(server: Server, graceMs = 2000): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
