import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { ControllerTrustError } from './controller-trust.js';
import { RegistrationError } from './registration.js';

// What a failed register or report means for the operator: the reporter logs one line per change of
// this state (not one per retry), with the reason the controller or the network gave.

export type Connection = 'connecting' | 'connected' | 'unreachable' | 'untrusted' | 'tls-failed' | 'registration-refused' | 'host-refused' | 'failing';

export interface ConnectionProblem {
  readonly state: Connection;
  /** The detail the controller or the network gave. */
  readonly reason: string;
  /** The log line: what it means and what to do. */
  readonly message: string;
}

const REFUSALS = new Set<number>([GrpcStatus.UNAUTHENTICATED, GrpcStatus.PERMISSION_DENIED, GrpcStatus.NOT_FOUND]);
const TLS_TROUBLE = /certificate|self[- ]signed|unable to verify|handshake|alert|tls|ssl/i;

/** Classifies a failure of Register (phase 'register') or of ReportStatus/RenewCertificate ('report'). */
export function connectionProblem(err: unknown, phase: 'register' | 'report', insecure: boolean): ConnectionProblem {
  const reason = (err as Partial<ServiceError>).details || (err instanceof Error ? err.message : String(err));
  if (err instanceof ControllerTrustError) {
    return err.kind === 'untrusted'
      ? { state: 'untrusted', reason, message: `${err.message}; retrying with backoff` }
      : { state: 'unreachable', reason, message: 'controller unreachable; retrying with backoff' };
  }
  if (err instanceof RegistrationError) return { state: 'failing', reason, message: `unusable answer from the controller; retrying with backoff` };
  const code = (err as Partial<ServiceError>).code;
  if (code === undefined) return { state: 'failing', reason, message: `${phase === 'register' ? 'registration' : 'report'} failed; retrying with backoff` };
  if (phase === 'register' && code !== GrpcStatus.UNAVAILABLE && code !== GrpcStatus.DEADLINE_EXCEEDED) {
    return {
      state: 'registration-refused',
      reason,
      message: 'the controller refused the registration (check REMOTEGPU_JOIN_TOKEN: expired, used up, revoked or from another cluster?); retrying with backoff',
    };
  }
  if (phase === 'report' && REFUSALS.has(code)) {
    const what = insecure ? 'credential' : 'certificate';
    return {
      state: 'host-refused',
      reason,
      message: `the controller refuses this host's ${what} (host removed? run \`remotegpu-agent reset\` and join again); retrying with backoff, keeping the identity`,
    };
  }
  if (code === GrpcStatus.UNAVAILABLE && !insecure && TLS_TROUBLE.test(reason)) {
    return {
      state: 'tls-failed',
      reason,
      message: 'mutual TLS with the controller fails (does it still present a certificate from the pinned cluster CA? has this host certificate expired?); retrying with backoff',
    };
  }
  if (code === GrpcStatus.UNAVAILABLE || code === GrpcStatus.DEADLINE_EXCEEDED) {
    const hint = insecure ? ' (REMOTEGPU_GRPC_INSECURE=1: the controller must run with it too)' : '';
    return { state: 'unreachable', reason, message: `controller unreachable${hint}; retrying with backoff` };
  }
  return { state: 'failing', reason, message: `the controller answered ${GrpcStatus[code] ?? code}; retrying with backoff` };
}
