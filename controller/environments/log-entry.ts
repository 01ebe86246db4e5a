// One line of an environment's logs as the API shows it (platform event or container output).

export interface LogEntry {
  readonly at: Date;
  readonly text: string;
  /** A piece of a line longer than 16 KiB (cut by the agent): the line goes on in the next entry. */
  readonly continued?: boolean;
}

/** `[YYYY-MM-DD HH:MM:SS] text`, in UTC, as the seed page shows; a cut piece ends with ` [continued]`. */
export function formatLogLine(entry: LogEntry): string {
  const iso = entry.at.toISOString();
  return `[${iso.slice(0, 10)} ${iso.slice(11, 19)}] ${entry.text}${entry.continued ? ' [continued]' : ''}`;
}
