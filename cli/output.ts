import type { Writable } from 'node:stream';

/** One column of a table: its header and how to show a row's cell. */
export interface Column<T> {
  readonly header: string;
  readonly cell: (row: T) => string | number | null | undefined;
  /** Right-align (numbers). */
  readonly right?: boolean;
}

/**
 * A plain-text table for people: upper-case headers, columns padded with two spaces, `-` for an
 * empty cell, no colours (it is meant to be read and grepped). Cells are kept on one line.
 */
export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((row) => columns.map((c) => oneLine(c.cell(row))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => (columns[i]!.right ? v.padStart(widths[i]!) : i === values.length - 1 ? v : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
}

function oneLine(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === '') return '-';
  return String(value).replace(/[\r\n\t]+/g, ' ');
}

/** `key: value` lines for one object (env get, whoami), keys padded to one width. */
export function renderFields(fields: readonly (readonly [string, string | number | null | undefined])[]): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${oneLine(v)}`).join('\n') + '\n';
}

/** The value as indented JSON and a newline (`--json`): exactly the API's `data`. */
export function renderJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Writes text; resolves once it is handed to the stream (or the reader went away: `| head`). */
export function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) return resolve();
    stream.write(text, () => resolve());
  });
}

/** How long ago an ISO time was, for tables: `5s`, `3m`, `2h`, `4d`. */
export function age(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}
