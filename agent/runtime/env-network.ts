import type Dockerode from 'dockerode';
import type { ContainerCreateOptions } from 'dockerode';
import type { Logger } from '../../common/logger.js';
import { dockerMessage, dockerStatus, ignoreMissing, toRuntimeError } from './docker-errors.js';
import { LABEL, assertEnvId, networkName } from './docker-names.js';
import { RuntimeError } from './errors.js';
import { KeyedLock } from './keyed-lock.js';

// One bridge network per environment, so that no environment can reach another's ports: Docker
// drops traffic between two user-defined bridges (DOCKER-ISOLATION-STAGE-*), which the default
// bridge, shared by every container, does not. Each network gets an explicit /28 cut from the
// agent's pool (REMOTEGPU_NETWORK_POOL): Docker's default address pools hold only ~31 networks.

/** Prefix length of every environment network: 16 addresses, 13 for containers. */
export const ENV_SUBNET_PREFIX = 28;

export interface EnvNetworkSettings {
  readonly docker: Dockerode;
  /** Value of the remotegpu.managed label: 'true', or the agent's namespace. */
  readonly managedBy: string;
  /** IPv4 network the /28s are cut from, e.g. '10.213.0.0/16' (REMOTEGPU_NETWORK_POOL). */
  readonly pool: string;
  readonly log?: Logger;
}

/** An environment network as ensure() leaves it. */
export interface EnsuredNetwork {
  readonly name: string;
  /** True when this call created it; false when it was there (adopted). */
  readonly created: boolean;
  /** Its IPv4 subnet, e.g. '10.213.0.16/28' (as Docker reports it). */
  readonly subnet: string | undefined;
}

/** Allocation (list the engine's subnets, pick, create) runs one at a time in the whole process. */
const allocation = new KeyedLock();

/** How many times a create refused for an overlapping pool (another agent, same engine) is retried. */
const MAX_OVERLAP_RETRIES = 20;

/** Creates, adopts, removes and lists the per-environment bridge networks of one agent. */
export class EnvNetworks {
  private readonly pool: Cidr;

  constructor(private readonly settings: EnvNetworkSettings) {
    this.pool = parseCidr(settings.pool);
    if (this.pool.prefix > ENV_SUBNET_PREFIX) {
      throw new RuntimeError('invalid_spec', `network pool ${settings.pool} is smaller than one /${ENV_SUBNET_PREFIX}`);
    }
  }

  /**
   * Creates the environment's bridge network when missing; returns its name and whether this call
   * created it. A network of that name labelled for this agent is adopted (after an agent
   * restart); one of another agent, or unlabelled, is RuntimeError 'permission_denied'.
   */
  async ensure(envId: string): Promise<EnsuredNetwork> {
    assertEnvId(envId);
    const name = networkName(envId);
    try {
      const existing = this.adoptable(envId, await this.byName(name));
      if (existing) return existing;
      return await allocation.run('allocate', async () => {
        // Again under the lock: a concurrent ensure() for the same environment may have created it.
        const again = this.adoptable(envId, await this.byName(name));
        return again ?? (await this.create(name, { [LABEL.envId]: envId }));
      });
    } catch (err) {
      throw toRuntimeError(err, 'creating a network');
    }
  }

  /**
   * Removes the environment's network (the caller removed its container first); true when it
   * existed. A network of that name that is not this agent's is left alone (false). Idempotent.
   */
  async remove(envId: string): Promise<boolean> {
    assertEnvId(envId);
    const name = networkName(envId);
    try {
      let existed = false;
      for (const n of await this.byName(name)) {
        if (n.Labels?.[LABEL.managed] !== this.settings.managedBy) continue;
        const removed = await ignoreMissing(async () => {
          await this.settings.docker.getNetwork(n.Id).remove();
          return true;
        });
        existed = removed === true || existed;
      }
      if (existed) this.settings.log?.info({ envId, network: name }, 'environment network removed');
      return existed;
    } catch (err) {
      throw toRuntimeError(err, 'removing a network');
    }
  }

  /** Every network of this agent's environments, by env id (for orphan cleanup). */
  async list(): Promise<{ envId: string; name: string }[]> {
    try {
      const networks = await this.settings.docker.listNetworks({ filters: { label: [`${LABEL.managed}=${this.settings.managedBy}`] } });
      return networks
        .filter((n) => Boolean(n.Labels?.[LABEL.envId]))
        .map((n) => ({ envId: n.Labels![LABEL.envId]!, name: n.Name }))
        .sort((a, b) => (a.envId < b.envId ? -1 : a.envId > b.envId ? 1 : 0));
    } catch (err) {
      throw toRuntimeError(err, 'listing networks');
    }
  }

  /** Networks named exactly `name` (the API's name filter matches substrings). */
  private async byName(name: string): Promise<Dockerode.NetworkInspectInfo[]> {
    const found = await this.settings.docker.listNetworks({ filters: { name: [name] } });
    return found.filter((n) => n.Name === name);
  }

  /** This agent's network among `found` (the networks of the name); throws if only others' are there. */
  private adoptable(envId: string, found: readonly Dockerode.NetworkInspectInfo[]): EnsuredNetwork | undefined {
    if (found.length === 0) return undefined;
    const ours = found.find((n) => n.Labels?.[LABEL.managed] === this.settings.managedBy && n.Labels?.[LABEL.envId] === envId);
    if (!ours) {
      const owner = found[0]!.Labels?.[LABEL.managed];
      throw new RuntimeError(
        'permission_denied',
        `network ${found[0]!.Name} already exists and is not this agent's (${owner === undefined ? 'unlabelled' : `${LABEL.managed}=${owner}`})`,
      );
    }
    return { name: ours.Name, created: false, subnet: ipv4Subnets(ours)[0] };
  }

  /**
   * Creates a spare network (labelled remotegpu.spare, no environment yet) for SpareNetworks: an
   * environment that takes it gets a network without waiting for Docker to make one.
   */
  async createSpare(name: string): Promise<EnsuredNetwork> {
    try {
      return await allocation.run('allocate', () => this.create(name, { [LABEL.spare]: 'true' }));
    } catch (err) {
      throw toRuntimeError(err, 'creating a network');
    }
  }

  /** Picks a free /28 and creates the network; a pool Docker says overlaps is skipped (re-listing). */
  private async create(name: string, labels: Record<string, string>): Promise<EnsuredNetwork> {
    const envId = labels[LABEL.envId];
    const refused: Cidr[] = [];
    for (let attempt = 0; ; attempt++) {
      const used = [...(await this.usedSubnets()), ...refused];
      const subnet = allocateSubnet(this.pool, used);
      if (!subnet) {
        throw new RuntimeError('internal', `network pool ${this.settings.pool} is exhausted: every /${ENV_SUBNET_PREFIX} in it is in use by a Docker network`);
      }
      const cidr = formatCidr(subnet);
      try {
        await this.settings.docker.createNetwork({
          Name: name,
          CheckDuplicate: true,
          Driver: 'bridge',
          Internal: false,
          Attachable: false,
          EnableIPv6: false,
          IPAM: { Driver: 'default', Config: [{ Subnet: cidr, Gateway: formatIp(subnet.base + 1) }] },
          Options: {
            'com.docker.network.bridge.enable_icc': 'false',
            'com.docker.network.bridge.enable_ip_masquerade': 'true',
          },
          Labels: { [LABEL.managed]: this.settings.managedBy, ...labels },
        });
        this.settings.log?.info({ envId, network: name, subnet: cidr }, envId ? 'environment network created' : 'spare network created');
        return { name, created: true, subnet: cidr };
      } catch (err) {
        if (dockerStatus(err) === 409 && envId) {
          // Created meanwhile by someone else (another agent instance): adopt it or refuse.
          const existing = this.adoptable(envId, await this.byName(name));
          if (existing) return existing;
        }
        if (!isOverlap(err) || attempt >= MAX_OVERLAP_RETRIES) throw err;
        this.settings.log?.debug({ envId, subnet: cidr, msg: dockerMessage(err) }, 'subnet taken meanwhile; trying the next');
        refused.push(subnet);
      }
    }
  }

  /** The IPv4 subnets of every network on the engine, whoever made it. */
  private async usedSubnets(): Promise<Cidr[]> {
    const networks = await this.settings.docker.listNetworks();
    return networks.flatMap((n) => ipv4Subnets(n).map(parseCidr));
  }
}

/** The HostConfig.NetworkMode and NetworkingConfig that put a new container on network `name` (pure). */
export function networkCreateOptions(name: string): Pick<ContainerCreateOptions, 'NetworkingConfig'> & { HostConfig: { NetworkMode: string } } {
  return { HostConfig: { NetworkMode: name }, NetworkingConfig: { EndpointsConfig: { [name]: {} } } };
}

/** Docker's answer when a requested subnet overlaps another network's. */
function isOverlap(err: unknown): boolean {
  return /pool overlaps|overlapping ipv4|overlaps with/i.test(dockerMessage(err));
}

function ipv4Subnets(n: Dockerode.NetworkInspectInfo): string[] {
  return (n.IPAM?.Config ?? []).map((c) => c.Subnet ?? '').filter((s) => CIDR_RE.test(s));
}

// IPv4 arithmetic on unsigned 32-bit numbers.

/** An IPv4 network: `base` (host bits cleared) as an unsigned 32-bit number, and its prefix length. */
export interface Cidr {
  readonly base: number;
  readonly prefix: number;
}

const CIDR_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** Parses "a.b.c.d/n" (host bits are cleared); throws RuntimeError 'invalid_spec' when malformed. */
export function parseCidr(text: string): Cidr {
  const m = CIDR_RE.exec(text.trim());
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const prefix = m ? Number(m[5]) : NaN;
  if (!m || octets.some((o) => o > 255) || prefix > 32) {
    throw new RuntimeError('invalid_spec', `invalid IPv4 network ${JSON.stringify(text)}: expected a.b.c.d/n`);
  }
  const ip = octets.reduce((acc, o) => acc * 256 + o, 0);
  return { base: ip - (ip % size(prefix)), prefix };
}

/** "a.b.c.d/n". */
export function formatCidr(c: Cidr): string {
  return `${formatIp(c.base)}/${c.prefix}`;
}

function formatIp(ip: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(ip / 2 ** shift) % 256).join('.');
}

function size(prefix: number): number {
  return 2 ** (32 - prefix);
}

function last(c: Cidr): number {
  return c.base + size(c.prefix) - 1;
}

/** True when the two networks share an address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base <= last(b) && b.base <= last(a);
}

/** The lowest /28 of `pool` that overlaps none of `used`, or undefined when there is none (pure). */
export function allocateSubnet(pool: Cidr, used: readonly Cidr[]): Cidr | undefined {
  const step = size(ENV_SUBNET_PREFIX);
  const inPool = used.filter((u) => overlaps(u, pool)).sort((a, b) => a.base - b.base);
  let candidate = pool.base;
  for (;;) {
    if (candidate + step - 1 > last(pool)) return undefined;
    const c: Cidr = { base: candidate, prefix: ENV_SUBNET_PREFIX };
    const blocker = inPool.find((u) => overlaps(u, c));
    if (!blocker) return c;
    // Jump past the blocker, to the next /28 boundary.
    candidate = Math.ceil((last(blocker) + 1) / step) * step;
  }
}
