// Numbers and sizes in messages, shared by the controller and the agent.

const BYTE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'] as const;

/**
 * Bytes in binary units with at most one decimal: 1024 → "1 KiB", 1.5 GiB → "1.5 GiB",
 * 100 → "100 bytes". Negative values keep their sign; non-finite values print as `String(n)`.
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  if (value < 1024) return `${sign}${trimNumber(value)} ${value === 1 ? 'byte' : 'bytes'}`;
  let unit = 0;
  value /= 1024;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${sign}${trimNumber(value)} ${BYTE_UNITS[unit]}`;
}

/** A number with at most one decimal and no trailing ".0". */
export function trimNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  return String(Math.round(n * 10) / 10);
}

/** An address as it goes before `:port` in HOST:PORT and URLs: IPv6 literals in brackets. */
export function hostForPort(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
