import { RuntimeError, type RuntimeErrorCode } from './errors.js';
import { portInDockerMessage } from './host-ports.js';

interface DockerodeError {
  statusCode?: number;
  json?: { message?: string } | null;
  code?: string;
  message?: string;
}

const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ETIMEDOUT']);

/** The HTTP status of a Docker API error, or undefined for other errors. */
export function dockerStatus(err: unknown): number | undefined {
  const status = (err as DockerodeError | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** Docker's own message for an API error (without dockerode's "(HTTP code …)" prefix). */
export function dockerMessage(err: unknown): string {
  const e = err as DockerodeError | null;
  const fromJson = e?.json?.message;
  if (typeof fromJson === 'string' && fromJson) return fromJson;
  const text = String(e?.message ?? err);
  const m = /^\(HTTP code \d+\) [^-]*- (.*)$/s.exec(text);
  return (m?.[1] ?? text).trim();
}

/** Classifies a Docker message; pure. */
export function classifyDockerMessage(message: string, status: number | undefined): RuntimeErrorCode {
  if (/no such image|pull access denied|repository does not exist|manifest unknown/i.test(message)) return 'image_not_found';
  if (/port is already allocated|address already in use|userland proxy/i.test(message)) return 'port_conflict';
  if (/could not select device driver|unresolvable CDI devices|CDI device injection failed|error gathering device information|nvidia-container-cli/i.test(message)) {
    return 'gpu_driver_missing';
  }
  if (status === 400 || /invalid mount config|bind source path does not exist|invalid (argument|reference format)/i.test(message)) {
    return 'invalid_spec';
  }
  if (status === 404) return 'not_found';
  return 'internal';
}

/**
 * Turns anything dockerode throws into a RuntimeError carrying Docker's message; a RuntimeError
 * passes through unchanged. `doing` prefixes the message only for engine-unreachable errors.
 */
export function toRuntimeError(err: unknown, doing = 'talking to Docker'): RuntimeError {
  if (err instanceof RuntimeError) return err;
  const code = (err as DockerodeError | null)?.code;
  if (typeof code === 'string' && UNREACHABLE.has(code) && dockerStatus(err) === undefined) {
    return new RuntimeError('docker_unavailable', `Docker engine unreachable while ${doing}: ${dockerMessage(err)}`, { cause: err });
  }
  const message = dockerMessage(err);
  const classified = classifyDockerMessage(message, dockerStatus(err));
  return new RuntimeError(classified, message, { cause: err, port: classified === 'port_conflict' ? portInDockerMessage(message) : undefined });
}

/** Runs `fn`, ignoring Docker's "not found" (404) and "not modified" (304) answers. */
export async function ignoreMissing<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const status = dockerStatus(err);
    if (status === 404 || status === 304) return undefined;
    throw err;
  }
}
