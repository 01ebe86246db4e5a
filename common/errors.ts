import { status as GrpcStatus } from '@grpc/grpc-js';

/**
 * Stable error codes of the whole product. Services throw `AppError` with one of these; the REST
 * layer and the gRPC layer turn it into their own status with `ERROR_TABLE`, and nothing else.
 */
export type ErrorCode =
  | 'invalid_argument'
  | 'malformed_json'
  | 'unauthenticated'
  | 'permission_denied'
  | 'not_found'
  | 'method_not_allowed'
  | 'wrong_state'
  | 'no_capacity'
  | 'conflict'
  | 'quota_exceeded'
  | 'payload_too_large'
  | 'request_timeout'
  | 'header_too_large'
  | 'too_many_requests'
  | 'internal'
  | 'unavailable'
  | 'service_unavailable';

export interface ErrorMapping {
  /** HTTP status of the REST answer. */
  readonly http: number;
  /** The contract's numeric `code` in the REST envelope (HTTP status × 100 + n). */
  readonly api: number;
  /** gRPC status used on the agent/controller wire. */
  readonly grpc: GrpcStatus;
}

/** The one table mapping error codes to HTTP status, REST `code` and gRPC status. */
export const ERROR_TABLE: Readonly<Record<ErrorCode, ErrorMapping>> = Object.freeze({
  invalid_argument: { http: 400, api: 40001, grpc: GrpcStatus.INVALID_ARGUMENT },
  malformed_json: { http: 400, api: 40002, grpc: GrpcStatus.INVALID_ARGUMENT },
  unauthenticated: { http: 401, api: 40101, grpc: GrpcStatus.UNAUTHENTICATED },
  permission_denied: { http: 403, api: 40301, grpc: GrpcStatus.PERMISSION_DENIED },
  not_found: { http: 404, api: 40401, grpc: GrpcStatus.NOT_FOUND },
  method_not_allowed: { http: 405, api: 40501, grpc: GrpcStatus.UNIMPLEMENTED },
  wrong_state: { http: 409, api: 40901, grpc: GrpcStatus.FAILED_PRECONDITION },
  no_capacity: { http: 409, api: 40902, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  conflict: { http: 409, api: 40903, grpc: GrpcStatus.ALREADY_EXISTS },
  quota_exceeded: { http: 409, api: 40904, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  payload_too_large: { http: 413, api: 41301, grpc: GrpcStatus.INVALID_ARGUMENT },
  request_timeout: { http: 408, api: 40801, grpc: GrpcStatus.DEADLINE_EXCEEDED },
  header_too_large: { http: 431, api: 43101, grpc: GrpcStatus.INVALID_ARGUMENT },
  too_many_requests: { http: 429, api: 42901, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  internal: { http: 500, api: 50001, grpc: GrpcStatus.INTERNAL },
  unavailable: { http: 502, api: 50201, grpc: GrpcStatus.UNAVAILABLE },
  service_unavailable: { http: 503, api: 50301, grpc: GrpcStatus.UNAVAILABLE },
});

/** One offending field of a request, listed in the envelope's `data` for validation errors. */
export interface FieldIssue {
  readonly field: string;
  readonly message: string;
}

/** The domain error. `message` is for users: what went wrong and what to do about it. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly fields: readonly FieldIssue[] | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; fields?: FieldIssue[] } = {}) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.fields = options.fields;
  }

  get mapping(): ErrorMapping {
    return ERROR_TABLE[this.code];
  }
}

/**
 * The invalid_argument error for bad request fields: every offending field is named in the message
 * ("invalid request: cpu: must be positive; memory: required") and listed in `data.fields`.
 * Every builder of field errors in the product goes through here.
 */
export function invalidFields(fields: readonly FieldIssue[], what = 'invalid request'): AppError {
  return new AppError('invalid_argument', `${what}: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`, { fields: [...fields] });
}

/**
 * `invalidFields` for one field; `summary` replaces the "invalid request: field: message" text
 * where a whole sentence says it better (the field is still listed in `data.fields`).
 */
export function fieldError(field: string, message: string, summary?: string): AppError {
  if (summary === undefined) return invalidFields([{ field, message }]);
  return new AppError('invalid_argument', summary, { fields: [{ field, message }] });
}

/** Finds the error code for a gRPC status (used where a gRPC error crosses into a service). */
export function codeForGrpcStatus(status: GrpcStatus): ErrorCode {
  switch (status) {
    case GrpcStatus.INVALID_ARGUMENT:
      return 'invalid_argument';
    case GrpcStatus.UNAUTHENTICATED:
      return 'unauthenticated';
    case GrpcStatus.PERMISSION_DENIED:
      return 'permission_denied';
    case GrpcStatus.NOT_FOUND:
      return 'not_found';
    case GrpcStatus.FAILED_PRECONDITION:
      return 'wrong_state';
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return 'no_capacity';
    case GrpcStatus.ALREADY_EXISTS:
      return 'conflict';
    case GrpcStatus.UNAVAILABLE:
    case GrpcStatus.DEADLINE_EXCEEDED:
    case GrpcStatus.CANCELLED:
      return 'unavailable';
    default:
      return 'internal';
  }
}
