import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * Paths redacted from every log line. Tokens, credentials, keys and the environment variables of
 * user containers must never reach a log.
 */
const REDACT = [
  'token',
  '*.token',
  'joinToken',
  '*.joinToken',
  'credential',
  '*.credential',
  'hostCredential',
  '*.hostCredential',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'env',
  '*.env',
  'sshAuthorizedKeys',
  '*.sshAuthorizedKeys',
  'jupyterToken',
  '*.jupyterToken',
  'keyPem',
  '*.keyPem',
  'secretKey',
  '*.secretKey',
  'secret',
  '*.secret',
];

/** Creates the process's root logger (JSON lines on stdout). */
export function createLogger(options: { level: string; name: string; destination?: NodeJS.WritableStream }): Logger {
  const opts: LoggerOptions = {
    name: options.name,
    level: options.level,
    redact: { paths: REDACT, censor: '[redacted]' },
    base: { pid: process.pid },
  };
  return options.destination ? pino(opts, options.destination as pino.DestinationStream) : pino(opts);
}
