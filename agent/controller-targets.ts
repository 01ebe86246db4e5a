import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { splitHostPort } from './controller-trust.js';

// Which controller the agent dials. REMOTEGPU_CONTROLLER lists one address or several (replicas
// sharing one database); a name may also resolve to several addresses (one DNS name for all
// replicas). The agent reports to one and, when a register or report attempt fails, moves on to
// the next, round-robin; the names are resolved again once every address was tried, so replicas
// added to or removed from DNS are seen without a restart.

/** Every address a host name resolves to (IPv4 and IPv6, in the resolver's order). */
export type LookupAll = (host: string) => Promise<readonly string[]>;

const lookupAll: LookupAll = async (host) => (await lookup(host, { all: true })).map((a) => a.address);

/** The controller addresses to dial, in turn. */
export class ControllerTargets {
  private candidates: readonly string[] = [];
  private at = 0;

  constructor(
    private readonly configured: readonly string[],
    private readonly lookup: LookupAll = lookupAll,
  ) {
    if (configured.length === 0) throw new Error('ControllerTargets needs at least one controller address');
  }

  /**
   * The address to dial now (HOST:PORT). The names are resolved on the first call and after every
   * address was tried (`advance`). Never rejects: a name that does not resolve now is dialled as
   * it is, and gRPC's error then says why.
   */
  async current(): Promise<string> {
    if (this.candidates.length === 0) {
      this.candidates = await expand(this.configured, this.lookup);
      this.at = 0;
    }
    return this.candidates[this.at]!;
  }

  /** Moves on to the next address (after a failed attempt); after the last one, the first again, resolved anew. */
  advance(): void {
    this.at++;
    if (this.at >= this.candidates.length) {
      this.candidates = [];
      this.at = 0;
    }
  }
}

/**
 * The configured addresses with every name that resolves to several addresses replaced by one
 * HOST:PORT per address (a name resolving to one address, or to none now, stays as it is).
 * Duplicates are dropped; the order is kept.
 */
export async function expand(configured: readonly string[], lookupHost: LookupAll = lookupAll): Promise<string[]> {
  const out: string[] = [];
  for (const address of configured) {
    const { host, port } = splitHostPort(address);
    let resolved: readonly string[] = [];
    if (!net.isIP(host)) resolved = await lookupHost(host).catch(() => []);
    if (resolved.length < 2) out.push(address);
    else for (const ip of resolved) out.push(net.isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}`);
  }
  return [...new Set(out)];
}
