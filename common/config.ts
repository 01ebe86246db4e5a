import { z } from 'zod';

/**
 * Thrown when configuration is invalid. Its message is a single line naming every bad variable,
 * suitable for printing as the process's only output before it exits.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * Parses `env` against a zod object schema whose keys are environment variable names and freezes
 * the result. Fails with one line listing every bad value: `invalid configuration:
 * REMOTEGPU_HTTP_PORT="abc": expected an integer; ...`. Values of variables whose names mention a
 * token, secret, password or URL are never echoed.
 */
export function parseEnv<S extends z.ZodObject>(schema: S, env: Record<string, string | undefined>): Readonly<z.infer<S>> {
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    input[key] = value === undefined || value.trim() === '' ? undefined : value.trim();
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const parts = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '?');
      const raw = input[key];
      const shown = raw === undefined ? '(unset)' : isSecretName(key) ? '(hidden)' : JSON.stringify(raw);
      return `${key}=${shown}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${parts.join('; ')}`);
  }
  return Object.freeze(parsed.data);
}

function isSecretName(key: string): boolean {
  return /TOKEN|SECRET|PASSWORD|CREDENTIAL|DATABASE_URL/i.test(key);
}

/** A TCP port number given as a string; 0 means any free port (tests, several instances on one machine). */
export const portVar = (fallback: number) =>
  z
    .string()
    .regex(/^\d+$/, 'expected an integer port number 1-65535')
    .transform(Number)
    .pipe(z.number().int().min(0, 'expected a port number 1-65535').max(65535, 'expected a port number 1-65535'))
    .default(fallback);

/** A positive integer (milliseconds, bytes, counts) given as a string. */
export const intVar = (fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^\d+$/, `expected an integer ${min}-${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `expected an integer >= ${min}`).max(max, `expected an integer <= ${max}`))
    .default(fallback);

/** A port range "FROM-TO". */
export const portRangeVar = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      const match = /^(\d+)-(\d+)$/.exec(value);
      const from = match ? Number(match[1]) : NaN;
      const to = match ? Number(match[2]) : NaN;
      if (!match || from < 1 || to > 65535 || from > to) {
        ctx.addIssue({ code: 'custom', message: 'expected a port range FROM-TO within 1-65535' });
        return z.NEVER;
      }
      return { from, to };
    });

/** Log level for pino. */
export const logLevelVar = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info');
