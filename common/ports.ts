import { readFile } from 'node:fs/promises';

// Linux's ephemeral port range (net.ipv4.ip_local_port_range): outgoing connections take their
// local port from it, so a port handed out for publishing inside it may be held at any moment.
// The controller checks its own machine at start; agents report theirs.

/** The kernel's ephemeral port range file. */
export const EPHEMERAL_RANGE_FILE = '/proc/sys/net/ipv4/ip_local_port_range';

export interface PortRange {
  readonly from: number;
  readonly to: number;
}

/** Parses ip_local_port_range ("32768\t60999"); null when it is not two ports in order. Pure. */
export function parseEphemeralRange(text: string): PortRange | null {
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
  if (!m) return null;
  const from = Number(m[1]);
  const to = Number(m[2]);
  return from >= 1 && to <= 65535 && from <= to ? { from, to } : null;
}

/** The machine's ephemeral port range; null when the file cannot be read (not Linux) or parsed. */
export async function readEphemeralRange(file = EPHEMERAL_RANGE_FILE): Promise<PortRange | null> {
  return readFile(file, 'utf8').then(parseEphemeralRange, () => null);
}

/** True when the two ranges share a port. Pure. */
export function rangesOverlap(a: PortRange, b: PortRange): boolean {
  return a.from <= b.to && b.from <= a.to;
}

/**
 * One warning per named range that overlaps the ephemeral range `ephemeral` (none when it is
 * unknown), naming the setting to change. Pure.
 */
export function ephemeralOverlapWarnings(ranges: readonly { readonly setting: string; readonly range: PortRange }[], ephemeral: PortRange | null, where: string): string[] {
  if (!ephemeral) return [];
  return ranges
    .filter((r) => rangesOverlap(r.range, ephemeral))
    .map(
      (r) =>
        `${r.setting} ${r.range.from}-${r.range.to} overlaps the ephemeral port range ${ephemeral.from}-${ephemeral.to} of ${where} ` +
        '(net.ipv4.ip_local_port_range): outgoing connections can hold ports handed out for environments. ' +
        `Move ${r.setting} below ${ephemeral.from} (default SSH 20000-24999, Jupyter 25000-28999), or narrow the ephemeral range with sysctl.`,
    );
}

/** The wildcard addresses ('' counts as one: unknown): a socket bound there holds the port on every address of its family. */
export function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || address === '';
}

/**
 * True when a port published (or listened on) at `a` and one at `b` on one machine collide: the
 * same address, or either a wildcard (an IPv6 wildcard listener is dual-stack by default, so it
 * counts for IPv4 too). Pure.
 */
export function addressesOverlap(a: string, b: string): boolean {
  return isWildcard(a) || isWildcard(b) || a === b;
}
