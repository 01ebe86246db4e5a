import { formatBytes as formatBinaryBytes } from '../common/format.js';
import { CliError, EXIT } from './errors.js';

const MULTIPLIERS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  ki: 2 ** 10,
  kib: 2 ** 10,
  mi: 2 ** 20,
  mib: 2 ** 20,
  gi: 2 ** 30,
  gib: 2 ** 30,
  ti: 2 ** 40,
  tib: 2 ** 40,
};

/**
 * Bytes from a size with an optional unit: `16Gi` / `16GiB` (2^30), `100G` / `100GB` (10^9),
 * `512Mi`, `1.5Ti`, or plain bytes. Case does not matter. Anything else (`16GG`, `-1`, `Gi`) is
 * a usage error naming the option.
 */
export function parseBytes(text: string, option: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const multiplier = match ? MULTIPLIERS[match[2]!.toLowerCase()] : undefined;
  if (!match || multiplier === undefined) {
    throw new CliError(`${option} ${JSON.stringify(text)} is not a size: use a number with a unit such as 512Mi, 16Gi, 100G or 1Ti`, EXIT.usage);
  }
  const bytes = Math.round(Number(match[1]) * multiplier);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new CliError(`${option} ${JSON.stringify(text)} must be a positive size`, EXIT.usage);
  return bytes;
}

/** A whole number of at least `min` from an option's text, or a usage error naming the option. */
export function parseCount(text: string, option: string, min = 0): number {
  if (!/^\d{1,9}$/.test(text.trim()) || Number(text) < min) throw new CliError(`${option} ${JSON.stringify(text)} must be a whole number of at least ${min}`, EXIT.usage);
  return Number(text);
}

/**
 * Bytes for people: common/format.ts's binary units with at most one decimal (`16 GiB`,
 * `1.5 TiB`, `512 MiB`), in the CLI's table style: `-` for no value, and `1000 B` below 1 KiB
 * (a narrow column, where common writes `1000 bytes`).
 */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return '-';
  return Math.abs(bytes) < 1024 ? `${bytes} B` : formatBinaryBytes(bytes);
}

const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Milliseconds from a duration such as `90s`, `10m`, `1h`, `1h30m` or plain seconds (`600`); a
 * usage error naming the option otherwise (`10x`, `0s`, `m`).
 */
export function parseDuration(text: string, option: string): number {
  const trimmed = text.trim();
  const bad = () => new CliError(`${option} ${JSON.stringify(text)} is not a duration: use e.g. 90s, 10m or 1h30m`, EXIT.usage);
  if (/^\d{1,9}$/.test(trimmed)) {
    if (Number(trimmed) === 0) throw bad();
    return Number(trimmed) * 1000;
  }
  if (!/^(?:\d{1,9}(?:ms|s|m|h))+$/.test(trimmed)) throw bad();
  let ms = 0;
  for (const [, value, unit] of trimmed.matchAll(/(\d+)(ms|s|m|h)/g)) ms += Number(value) * DURATION_MS[unit!]!;
  if (ms <= 0 || !Number.isSafeInteger(ms)) throw bad();
  return ms;
}

/** A duration for messages: `500 ms`, `45 s`, `10 min`, `1 h 30 min`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  const minutes = Math.round(ms / 60_000);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h${minutes % 60 ? ` ${minutes % 60} min` : ''}`;
}
