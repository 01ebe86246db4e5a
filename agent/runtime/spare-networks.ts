import { randomBytes } from 'node:crypto';
import type Dockerode from 'dockerode';
import type { Logger } from '../../common/logger.js';
import { ignoreMissing, toRuntimeError } from './docker-errors.js';
import type { EnvNetworkManager } from './docker-lifecycle.js';
import { LABEL, assertEnvId } from './docker-names.js';
import type { EnvNetworks } from './env-network.js';
import { KeyedLock } from './keyed-lock.js';

// Docker takes ~70 ms to make a bridge network (its iptables rules), on the path of every create.
// SpareNetworks keeps a few made ahead: a new environment takes one at once, and a replacement is
// made in the background. A spare is labelled remotegpu.managed and remotegpu.spare; which
// environment owns it is the container on it (its NetworkMode), so a spare whose container is
// gone, or that an apply took and then failed, is simply free again: nothing can leak or be
// taken twice.

export interface SpareNetworkSettings {
  readonly docker: Dockerode;
  /** Value of the remotegpu.managed label. */
  readonly managedBy: string;
  /** How many free spares to keep ready (REMOTEGPU_NETWORK_SPARES); 0 makes every network on demand. */
  readonly spares: number;
  readonly log?: Logger | undefined;
}

/** The per-environment networks with spares made ahead (see above); what the lifecycle uses. */
export class SpareNetworks implements EnvNetworkManager {
  /** Spares an apply in flight has taken (name → env id) until its container is on it. */
  private readonly claimed = new Map<string, string>();
  private readonly lock = new KeyedLock();
  private replenishing: Promise<void> | undefined;

  constructor(
    private readonly networks: EnvNetworks,
    private readonly settings: SpareNetworkSettings,
  ) {}

  /**
   * The environment's network: the one its container is on (`attached`) when that is this agent's,
   * else one named for it (made by an older agent, or when no spare is kept), else a free spare,
   * else a new one named for it. `created` is true only for a network this call made.
   */
  async ensure(envId: string, attached?: string): Promise<{ name: string; created: boolean }> {
    assertEnvId(envId);
    if (attached && (await this.isOurs(attached))) return { name: attached, created: false };
    if (this.settings.spares > 0) {
      const own = (await this.networks.list()).find((n) => n.envId === envId);
      if (own) return { name: own.name, created: false };
      const spare = await this.claim(envId);
      if (spare) return { name: spare, created: false };
    }
    return this.networks.ensure(envId);
  }

  /**
   * The apply of `envId` is over: a spare it took is its own now (its container is on it) or free
   * again. Replacements are made now, not while the container starts: Docker makes networks and
   * joins containers to them one at a time, so a spare made meanwhile would delay that start.
   */
  release(envId: string): void {
    for (const [name, owner] of this.claimed) if (owner === envId) this.claimed.delete(name);
    this.replenishSoon();
  }

  /**
   * Removes the environment's networks: `attached` (those its containers were on, read before they
   * were removed) when this agent's and empty, and the one named for it. True when any existed.
   */
  async remove(envId: string, attached: readonly string[] = []): Promise<boolean> {
    let existed = false;
    try {
      for (const name of new Set(attached)) {
        if (!(await this.isOurs(name)) || (await this.inUse(name))) continue;
        if (await ignoreMissing(async () => (await this.settings.docker.getNetwork(name).remove(), true))) existed = true;
        this.settings.log?.info({ envId, network: name }, 'environment network removed');
      }
    } catch (err) {
      throw toRuntimeError(err, 'removing a network');
    }
    return (await this.networks.remove(envId)) || existed;
  }

  /** Makes spares until `spares` are free (one at a time, in the background); errors are logged. */
  replenishSoon(): void {
    if (this.settings.spares <= 0 || this.replenishing) return;
    this.replenishing = this.replenish()
      .catch((err: unknown) => this.settings.log?.warn({ err: String(err) }, 'could not make a spare network'))
      .finally(() => (this.replenishing = undefined));
  }

  /** Resolves when no replenishing is under way (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.replenishing) await this.replenishing;
  }

  private async replenish(): Promise<void> {
    for (;;) {
      const free = await this.freeSpares();
      if (free.length >= this.settings.spares) return;
      await this.networks.createSpare(`remotegpu-spare-${randomBytes(6).toString('hex')}`);
    }
  }

  /** Takes a free spare for `envId`, or undefined when none is free. */
  private claim(envId: string): Promise<string | undefined> {
    return this.lock.run('claim', async () => {
      const [spare] = await this.freeSpares();
      if (spare) this.claimed.set(spare, envId);
      return spare;
    });
  }

  /**
   * This agent's spares no container is on and no apply has taken: two Docker calls whatever the
   * number of environments (a taken spare keeps its label, so the list grows with them).
   */
  private async freeSpares(): Promise<string[]> {
    const [spares, containers] = await Promise.all([
      this.settings.docker.listNetworks({ filters: { label: [`${LABEL.managed}=${this.settings.managedBy}`, `${LABEL.spare}=true`] } }),
      this.settings.docker.listContainers({ all: true }),
    ]);
    const used = new Set(containers.flatMap((c) => [c.HostConfig?.NetworkMode ?? '', ...Object.keys(c.NetworkSettings?.Networks ?? {})]));
    return spares
      .map((n) => n.Name)
      .filter((name) => !this.claimed.has(name) && !used.has(name))
      .sort();
  }

  /** True when a container (running or not) is on network `name`. */
  private async inUse(name: string): Promise<boolean> {
    return (await this.settings.docker.listContainers({ all: true, filters: { network: [name] } })).length > 0;
  }

  private async isOurs(name: string): Promise<boolean> {
    const info = await ignoreMissing(() => this.settings.docker.getNetwork(name).inspect());
    return (info?.Labels ?? {})[LABEL.managed] === this.settings.managedBy;
  }
}
