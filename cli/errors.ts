/**
 * Exit codes of the `remotegpu` command. Scripts can tell a mistake in the call from a refusal by
 * the platform from an outage, and retry only what is worth retrying.
 */
export const EXIT = {
  ok: 0,
  /** Anything else: a server fault (500), an answer the CLI did not expect. */
  error: 1,
  /** The call was wrong: an unknown option, bad units, a field the API refused (400, 413). */
  usage: 2,
  /** Not signed in, or the token was refused (401) or lacks the right (403). */
  auth: 3,
  /** The environment, key, host, ... does not exist, or is not yours (404). */
  notFound: 4,
  /** The platform refused it as things stand: no capacity, quota, wrong state (409, 429). */
  conflict: 5,
  /** The controller cannot be reached, or answered that it is unavailable (502, 503, 504). */
  unavailable: 6,
  /** `--wait` gave up before the environment got where it was going. */
  timeout: 7,
  /** Interrupted (Ctrl-C). */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the CLI prints as one line (`remotegpu: <message>`) before exiting with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.error,
    /** Further lines printed under the message (e.g. one per refused field). */
    readonly details: readonly string[] = [],
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** The exit code for an HTTP error status the API answered. */
export function exitCodeForStatus(status: number): ExitCode {
  if (status === 400 || status === 413 || status === 422) return EXIT.usage;
  if (status === 401 || status === 403) return EXIT.auth;
  if (status === 404) return EXIT.notFound;
  if (status === 409 || status === 429) return EXIT.conflict;
  if (status === 502 || status === 503 || status === 504) return EXIT.unavailable;
  return EXIT.error;
}
