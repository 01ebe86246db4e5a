import type { ErrorCode } from '../../common/errors.js';

/** Why a runtime call failed, stable for callers to branch on. */
export type RuntimeErrorCode =
  | 'image_not_found'
  /** A host port the spec publishes is taken on the host (RuntimeError.port names it when known). */
  | 'port_conflict'
  | 'gpu_driver_missing'
  | 'invalid_spec'
  /** The agent's own rules refuse the spec whatever the controller says (mount-policy.ts, host-config-guard.ts). */
  | 'permission_denied'
  | 'not_found'
  | 'docker_unavailable'
  /** The data directory's disk would fall below its reserve (REMOTEGPU_DISK_RESERVE). */
  | 'disk_full'
  | 'internal';

/** The product-wide code for each runtime code, for the gRPC edge that turns it into a status. */
export const RUNTIME_TO_APP_CODE: Readonly<Record<RuntimeErrorCode, ErrorCode>> = Object.freeze({
  image_not_found: 'invalid_argument',
  port_conflict: 'conflict',
  gpu_driver_missing: 'wrong_state',
  invalid_spec: 'invalid_argument',
  permission_denied: 'permission_denied',
  not_found: 'not_found',
  docker_unavailable: 'unavailable',
  disk_full: 'no_capacity',
  internal: 'internal',
});

/** The one error the container runtime throws. `message` carries Docker's own words where there are any. */
export class RuntimeError extends Error {
  readonly code: RuntimeErrorCode;
  /** With 'port_conflict': the host port that is taken, when known (the controller moves the environment off it). */
  readonly port: number | undefined;

  constructor(code: RuntimeErrorCode, message: string, options: { cause?: unknown; port?: number | undefined } = {}) {
    super(message, { cause: options.cause });
    this.name = 'RuntimeError';
    this.code = code;
    this.port = options.port;
  }
}
