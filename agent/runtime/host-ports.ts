import { readFile } from 'node:fs/promises';
import { createServer, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { addressesOverlap } from '../../common/ports.js';

// The host's TCP ports as they matter for publishing containers' ports: the ports something
// listens on, and a probe that a port is free right before a container publishes it (the
// ephemeral range is in common/ports.ts). Everything here reads /proc or binds a
// socket asynchronously: nothing blocks the event loop.

/** The kernel's TCP socket tables. */
export const TCP_TABLES = ['/proc/net/tcp', '/proc/net/tcp6'] as const;
/** At most this many busy ports are reported (a host with more listeners reports the lowest). */
export const MAX_BUSY_PORTS = 8192;

export interface Listener {
  /** The local address in its usual text form ("0.0.0.0", "127.0.0.1", "::", "::1"). */
  readonly address: string;
  readonly port: number;
}

/** State LISTEN in /proc/net/tcp{,6}. */
const TCP_LISTEN = '0A';

/**
 * The TCP listeners of one /proc/net/tcp or /proc/net/tcp6 table. Addresses there are hex words in
 * host byte order (little-endian on every platform the agent runs on); ports are big-endian hex. Pure.
 */
export function parseTcpListeners(table: string): Listener[] {
  const out: Listener[] = [];
  for (const line of table.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || fields[3] !== TCP_LISTEN) continue;
    const [addrHex, portHex] = fields[1]!.split(':');
    if (!addrHex || !portHex) continue;
    const port = parseInt(portHex, 16);
    const address = addrHex.length === 8 ? ipv4FromHex(addrHex) : addrHex.length === 32 ? ipv6FromHex(addrHex) : null;
    if (address !== null && port > 0 && port <= 65535) out.push({ address, port });
  }
  return out;
}

function ipv4FromHex(hex: string): string {
  const n = parseInt(hex, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join('.');
}

function ipv6FromHex(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(parseInt(word.slice(b * 2, b * 2 + 2), 16));
  }
  // IPv4-mapped (::ffff:a.b.c.d): the IPv4 address.
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return compressIpv6(groups);
}

function compressIpv6(groups: string[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (bestLen < 2) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/**
 * The ports busy for publishing on `publishAddress`: every TCP listener of the host whose address
 * overlaps it, sorted, without duplicates, at most MAX_BUSY_PORTS. Reads both tables
 * asynchronously; a table that cannot be read (no IPv6) counts as empty.
 */
export async function busyPorts(publishAddress: string, tables: readonly string[] = TCP_TABLES): Promise<number[]> {
  const texts = await Promise.all(tables.map((t) => readFile(t, 'utf8').catch(() => '')));
  const ports = new Set<number>();
  for (const text of texts) for (const l of parseTcpListeners(text)) if (addressesOverlap(l.address, publishAddress)) ports.add(l.port);
  return [...ports].sort((x, y) => x - y).slice(0, MAX_BUSY_PORTS);
}

/**
 * True when `port` can be bound on `address` now (bound, then closed at once). An address this
 * host does not have, or any error but "in use", says true: Docker's own bind decides then.
 */
export function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code !== 'EADDRINUSE'));
    server.listen({ host: address || '0.0.0.0', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * The port a Docker "port is already allocated" / "address already in use" message names
 * ("Bind for 0.0.0.0:2222 failed", "listen tcp4 127.0.0.1:45123: bind"); undefined when none. Pure.
 */
export function portInDockerMessage(message: string): number | undefined {
  const m = /Bind for \[?[0-9a-fA-F.:]*\]?:(\d+) failed|listen tcp[46]? \[?[0-9a-fA-F.:]*\]?:(\d+): bind/.exec(message);
  const port = Number(m?.[1] ?? m?.[2]);
  return Number.isInteger(port) && port > 0 && port <= 65535 ? port : undefined;
}

/**
 * The default REMOTEGPU_PUBLISH_ADDRESS: the public address when it is an IP literal this host
 * has (any 127.x address, ::1, or one of `localAddresses`), so that two agents of one machine
 * with different public addresses never publish on the same address; 'localhost' is 127.0.0.1;
 * anything else (a name, an address the host does not have, e.g. behind NAT) 0.0.0.0. Pure.
 */
export function defaultPublishAddress(publicAddress: string, localAddresses: readonly string[]): string {
  if (publicAddress === 'localhost') return '127.0.0.1';
  if (isIP(publicAddress) === 0) return '0.0.0.0';
  if (publicAddress.startsWith('127.') || publicAddress === '::1' || localAddresses.includes(publicAddress)) return publicAddress;
  return '0.0.0.0';
}

/** Every address of the host's network interfaces. */
export function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}
