import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  EnvNetworks,
  allocateSubnet,
  formatCidr,
  networkCreateOptions,
  overlaps,
  parseCidr,
  type Cidr,
} from '../../../agent/runtime/env-network.js';
import { RuntimeError } from '../../../agent/runtime/errors.js';
import { blockMetadata, findIptables, metadataRule, unblockMetadata } from '../../../agent/runtime/metadata-block.js';
import type { Logger } from '../../../common/logger.js';
import { BUSYBOX_IMAGE, DOCKER_SKIP_MESSAGE, dockerAvailable, dockerExec, ensureBusyboxImage, freePort, testDocker } from '../../helpers/docker.js';
import { waitFor } from './wait.js';

const HAVE_DOCKER = await dockerAvailable();
if (!HAVE_DOCKER) console.warn(DOCKER_SKIP_MESSAGE);

// This file's own pools and labels: no other test file uses 10.214.0.0/16, and the managedBy
// values are unique per run, so parallel test files never touch each other's networks.
const POOL = '10.214.0.0/16';
const SMALL_POOL = '10.214.255.0/24';
const RUN = randomBytes(3).toString('hex');
const MANAGED = `envnet-${RUN}`;
const OTHER = `envnet-other-${RUN}`;
const TEST_LABEL = 'remotegpu-test.env-network';

function envId(tag: string): string {
  return `en-${RUN}-${tag}`;
}

function cidr(text: string): Cidr {
  return parseCidr(text);
}

describe('subnet arithmetic (pure)', () => {
  it('parses and normalises IPv4 networks', () => {
    expect(formatCidr(cidr('10.213.7.9/16'))).toBe('10.213.0.0/16');
    expect(formatCidr(cidr('255.255.255.255/32'))).toBe('255.255.255.255/32');
    for (const bad of ['10.0.0.0', '10.0.0.256/24', '10.0.0.0/33', 'fd00::/64', '']) {
      expect(() => parseCidr(bad)).toThrow(RuntimeError);
    }
  });

  it('picks the lowest free /28, jumping past networks of any size', () => {
    const pool = cidr('10.213.0.0/16');
    expect(formatCidr(allocateSubnet(pool, [])!)).toBe('10.213.0.0/28');
    expect(formatCidr(allocateSubnet(pool, [cidr('10.213.0.0/28'), cidr('172.17.0.0/16')])!)).toBe('10.213.0.16/28');
    // A /30 inside the first /28 still takes the whole /28; a /24 takes 16 of them.
    expect(formatCidr(allocateSubnet(pool, [cidr('10.213.0.4/30')])!)).toBe('10.213.0.16/28');
    expect(formatCidr(allocateSubnet(pool, [cidr('10.213.0.0/24'), cidr('10.213.1.0/28')])!)).toBe('10.213.1.16/28');
    // A network larger than the pool around it leaves nothing.
    expect(allocateSubnet(pool, [cidr('10.0.0.0/8')])).toBeUndefined();
    const tiny = cidr('10.213.0.0/27');
    expect(allocateSubnet(tiny, [cidr('10.213.0.0/28'), cidr('10.213.0.16/28')])).toBeUndefined();
    expect(overlaps(cidr('10.213.0.0/28'), cidr('10.213.0.15/32'))).toBe(true);
    expect(overlaps(cidr('10.213.0.0/28'), cidr('10.213.0.16/32'))).toBe(false);
  });

  it('networkCreateOptions puts the container on that network only', () => {
    expect(networkCreateOptions('remotegpu-e1-net')).toEqual({
      HostConfig: { NetworkMode: 'remotegpu-e1-net' },
      NetworkingConfig: { EndpointsConfig: { 'remotegpu-e1-net': {} } },
    });
  });

  it('refuses a pool smaller than one /28', () => {
    expect(() => new EnvNetworks({ docker: new Docker(), managedBy: 'x', pool: '10.0.0.0/29' })).toThrow(RuntimeError);
  });
});

describe.skipIf(!HAVE_DOCKER)('EnvNetworks (real Docker)', () => {
  const docker = testDocker();
  const networks = new EnvNetworks({ docker, managedBy: MANAGED, pool: POOL });
  const other = new EnvNetworks({ docker, managedBy: OTHER, pool: POOL });
  /** Networks and containers made outside EnvNetworks, removed in afterAll. */
  const extraNetworks: string[] = [];
  const containers: string[] = [];
  const servers: Server[] = [];

  beforeAll(async () => {
    await ensureBusyboxImage(docker);
  });

  afterAll(async () => {
    for (const c of containers) await docker.getContainer(c).remove({ force: true, v: true }).catch(() => undefined);
    for (const s of servers) s.close();
    for (const managedBy of [MANAGED, OTHER]) {
      const left = await docker.listNetworks({ filters: { label: [`remotegpu.managed=${managedBy}`] } });
      for (const n of left) await docker.getNetwork(n.Id).remove().catch(() => undefined);
    }
    for (const n of extraNetworks) await docker.getNetwork(n).remove().catch(() => undefined);
  });

  /** An HTTP GET from inside `container` with busybox nc (busybox-static's wget crashes in this image). */
  function httpGet(container: string, ip: string, port: number) {
    return dockerExec(docker, container, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${ip} ${port}`]);
  }

  async function inspect(name: string): Promise<Docker.NetworkInspectInfo> {
    return (await docker.getNetwork(name).inspect()) as Docker.NetworkInspectInfo;
  }

  function subnetOf(info: Docker.NetworkInspectInfo): string {
    return info.IPAM?.Config?.[0]?.Subnet ?? '';
  }

  it('creates a labelled /28 bridge in the pool, adopts it again and after a restart, removes it once', async () => {
    const id = envId('life');
    const first = await networks.ensure(id);
    expect(first).toMatchObject({ name: `remotegpu-${id}-net`, created: true });

    const info = await inspect(first.name);
    expect(info.Driver).toBe('bridge');
    expect(info.Labels).toMatchObject({ 'remotegpu.managed': MANAGED, 'remotegpu.env-id': id });
    expect(info.EnableIPv6).toBe(false);
    expect(info.Internal).toBe(false);
    expect(info.Options).toMatchObject({
      'com.docker.network.bridge.enable_icc': 'false',
      'com.docker.network.bridge.enable_ip_masquerade': 'true',
    });
    const subnet = cidr(subnetOf(info));
    expect(subnet.prefix).toBe(28);
    expect(overlaps(subnet, cidr(POOL))).toBe(true);
    expect(first.subnet).toBe(subnetOf(info));

    expect(await networks.ensure(id)).toEqual({ name: first.name, created: false, subnet: first.subnet });
    // An agent restart: a new instance adopts the labelled network.
    const restarted = new EnvNetworks({ docker, managedBy: MANAGED, pool: POOL });
    expect(await restarted.ensure(id)).toEqual({ name: first.name, created: false, subnet: first.subnet });
    expect(await restarted.list()).toContainEqual({ envId: id, name: first.name });
    expect((await inspect(first.name)).Id).toBe(info.Id);

    expect(await networks.remove(id)).toBe(true);
    await expect(docker.getNetwork(first.name).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(await networks.remove(id)).toBe(false);
    expect(await networks.list()).not.toContainEqual({ envId: id, name: first.name });
  });

  it("never adopts, removes or lists another agent's network, nor an unlabelled one", async () => {
    const id = envId('foreign');
    const theirs = await other.ensure(id);
    expect(theirs.created).toBe(true);

    const err = await networks.ensure(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err).toMatchObject({ code: 'permission_denied' });
    expect(await networks.remove(id)).toBe(false);
    expect((await inspect(theirs.name)).Labels?.['remotegpu.managed']).toBe(OTHER);
    expect((await networks.list()).map((n) => n.envId)).not.toContain(id);
    expect(await other.list()).toContainEqual({ envId: id, name: theirs.name });

    const bare = envId('bare');
    const bareName = `remotegpu-${bare}-net`;
    await docker.createNetwork({ Name: bareName, CheckDuplicate: true, Labels: { [TEST_LABEL]: RUN } });
    extraNetworks.push(bareName);
    await expect(networks.ensure(bare)).rejects.toMatchObject({ code: 'permission_denied' });
    expect(await networks.remove(bare)).toBe(false);
    await docker.getNetwork(bareName).inspect();

    expect(await other.remove(id)).toBe(true);
  });

  it('skips a subnet Docker says is taken (a network created meanwhile by another agent on the engine)', async () => {
    // A network in the small pool's first /28 that the allocator's listing does not show.
    const hiddenName = `envnet-hidden-${RUN}`;
    await docker.createNetwork({
      Name: hiddenName,
      CheckDuplicate: true,
      IPAM: { Config: [{ Subnet: '10.214.255.0/28' }] },
      Labels: { [TEST_LABEL]: RUN },
    });
    extraNetworks.push(hiddenName);
    const hiding = testDocker();
    const list = hiding.listNetworks.bind(hiding) as (o?: object) => Promise<Docker.NetworkInspectInfo[]>;
    Object.assign(hiding, {
      listNetworks: async (o?: object) => (await list(o)).filter((n) => n.Name !== hiddenName),
    });
    const small = new EnvNetworks({ docker: hiding, managedBy: MANAGED, pool: SMALL_POOL });
    const got = await small.ensure(envId('retry'));
    expect(got.created).toBe(true);
    expect(got.subnet).toBe('10.214.255.16/28');
    // Seen in the listing, it is skipped without asking Docker.
    const seeing = new EnvNetworks({ docker, managedBy: MANAGED, pool: SMALL_POOL });
    expect((await seeing.ensure(envId('retry2'))).subnet).toBe('10.214.255.32/28');
    expect(await small.remove(envId('retry'))).toBe(true);
    expect(await seeing.remove(envId('retry2'))).toBe(true);
  });

  it('10 concurrent ensure() calls get 10 distinct /28s in the pool', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => envId(`par${i}`));
    const results = await Promise.all(ids.map((id) => networks.ensure(id)));
    expect(results.every((r) => r.created)).toBe(true);
    const subnets = await Promise.all(results.map(async (r) => subnetOf(await inspect(r.name))));
    expect(new Set(subnets).size).toBe(10);
    const parsed = subnets.map(cidr);
    for (const [i, s] of parsed.entries()) {
      expect(s.prefix).toBe(28);
      expect(overlaps(s, cidr(POOL))).toBe(true);
      for (const t of parsed.slice(i + 1)) expect(overlaps(s, t)).toBe(false);
    }
    // Nothing else on the engine shares any of them.
    const all = await docker.listNetworks();
    for (const n of all) {
      if (results.some((r) => r.name === n.Name)) continue;
      for (const c of n.IPAM?.Config ?? []) {
        if (c.Subnet && /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(c.Subnet)) for (const s of parsed) expect(overlaps(s, cidr(c.Subnet))).toBe(false);
      }
    }
    expect((await networks.list()).filter((n) => ids.includes(n.envId))).toHaveLength(10);
    const removed = await Promise.all(ids.map((id) => networks.remove(id)));
    expect(removed).toEqual(ids.map(() => true));
  });

  it('isolates environments from each other; the host reaches published ports, containers reach the host', async () => {
    const netA = await networks.ensure(envId('iso-a'));
    const netB = await networks.ensure(envId('iso-b'));
    const published = await freePort();
    const nameA = `envnet-a-${RUN}`;
    const nameB = `envnet-b-${RUN}`;
    containers.push(nameA, nameB);

    const a = await docker.createContainer({
      name: nameA,
      Image: BUSYBOX_IMAGE,
      Labels: { [TEST_LABEL]: RUN },
      Env: ['TEST_CMD=mkdir -p /www && echo a-ok > /www/index.html && exec httpd -f -p 8080 -h /www'],
      ExposedPorts: { '8080/tcp': {} },
      ...networkCreateOptions(netA.name),
      HostConfig: {
        ...networkCreateOptions(netA.name).HostConfig,
        PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: String(published) }] },
      },
    });
    const b = await docker.createContainer({ name: nameB, Image: BUSYBOX_IMAGE, Labels: { [TEST_LABEL]: RUN }, ...networkCreateOptions(netB.name) });
    await a.start();
    await b.start();

    const infoA = await a.inspect();
    const infoB = await b.inspect();
    expect(Object.keys(infoA.NetworkSettings.Networks)).toEqual([netA.name]);
    expect(Object.keys(infoB.NetworkSettings.Networks)).toEqual([netB.name]);
    const ipA = infoA.NetworkSettings.Networks[netA.name]!.IPAddress;
    const gatewayB = infoB.NetworkSettings.Networks[netB.name]!.Gateway;
    expect(overlaps(cidr(`${ipA}/32`), cidr(netA.subnet!))).toBe(true);

    // A's listener is up: A reaches it by its own address, the host through the published port.
    await waitFor(async () => (await httpGet(nameA, ipA, 8080)).stdout.includes('a-ok'), 15_000, 'httpd in A');
    const viaHost = await fetch(`http://127.0.0.1:${published}/`);
    expect((await viaHost.text()).trim()).toBe('a-ok');

    // B cannot reach A by A's address (Docker drops traffic between bridges).
    const fromB = await httpGet(nameB, ipA, 8080);
    expect(fromB.exitCode).not.toBe(0);
    expect(fromB.stdout).not.toContain('a-ok');

    // B reaches a listener on the host at its gateway address.
    const server = createServer((socket) => socket.end('host-ok\n'));
    servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, gatewayB, resolve);
    });
    const hostPort = (server.address() as { port: number }).port;
    const toHost = await dockerExec(docker, nameB, ['nc', '-w', '2', gatewayB, String(hostPort)]);
    expect(toHost.stdout).toContain('host-ok');

    // Outbound NAT: Docker masquerades the subnet on its way out (checked in the nat table, when readable).
    const target = await findIptables();
    if (target) {
      const nat = await run(target.binary, ['-w', '5', '-t', 'nat', '-S', 'POSTROUTING']).catch(() => '');
      if (nat) expect(nat).toMatch(new RegExp(`-s ${netB.subnet!.replace(/\./g, '\\.')} ! -o br-\\w+ -j MASQUERADE`));
    }

    for (const c of [nameA, nameB]) await docker.getContainer(c).remove({ force: true, v: true });
    expect(await networks.remove(envId('iso-a'))).toBe(true);
    expect(await networks.remove(envId('iso-b'))).toBe(true);
  });

  it('times ensure() of a new network and remove() (median of 10; printed, not asserted)', async () => {
    const ensureMs: number[] = [];
    const removeMs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const id = envId(`time${i}`);
      let t = performance.now();
      expect((await networks.ensure(id)).created).toBe(true);
      ensureMs.push(performance.now() - t);
      t = performance.now();
      expect(await networks.remove(id)).toBe(true);
      removeMs.push(performance.now() - t);
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    console.log(
      `env-network timing over 10 runs: ensure (new) median ${median(ensureMs).toFixed(1)} ms ` +
        `[${ensureMs.map((x) => x.toFixed(0)).join(' ')}], remove median ${median(removeMs).toFixed(1)} ms ` +
        `[${removeMs.map((x) => x.toFixed(0)).join(' ')}]`,
    );
  });
});

const IS_ROOT = process.getuid?.() === 0;
const IPTABLES = IS_ROOT ? await findIptables() : undefined;

describe.skipIf(!IPTABLES)('blockMetadata (real iptables)', () => {
  const pool = '10.214.0.0/16';
  const docker = testDocker();
  const networks = new EnvNetworks({ docker, managedBy: MANAGED, pool });
  const containerName = `envnet-meta-${RUN}`;

  afterAll(async () => {
    await docker.getContainer(containerName).remove({ force: true }).catch(() => undefined);
    if (HAVE_DOCKER) await networks.remove(envId('meta')).catch(() => undefined);
    await unblockMetadata(pool);
  });

  async function count(chain: string): Promise<number> {
    const rules = await run(IPTABLES!.binary, ['-w', '5', '-S', chain]);
    return rules.split('\n').filter((l) => l.includes(`-s ${pool}`) && l.includes('169.254.169.254/32') && l.includes('remotegpu-block-metadata')).length;
  }

  async function packets(chain: string): Promise<number> {
    const out = await run(IPTABLES!.binary, ['-w', '5', '-L', chain, '-v', '-n', '-x']);
    const line = out.split('\n').find((l) => l.includes('remotegpu-block-metadata') && l.includes(pool));
    return Number(line?.trim().split(/\s+/)[0] ?? NaN);
  }

  it("uses the iptables Docker uses (the one holding DOCKER-USER)", () => {
    console.log(`metadata block: iptables binary ${IPTABLES!.binary}, forward chain ${IPTABLES!.forwardChain}`);
    expect(IPTABLES!.forwardChain).toBe(HAVE_DOCKER ? 'DOCKER-USER' : IPTABLES!.forwardChain);
  });

  it('installs the DOCKER-USER and INPUT rules once, however often it is called', async () => {
    const warn = vi.fn();
    const log = { warn, info: vi.fn(), debug: vi.fn() } as unknown as Logger;
    expect(await blockMetadata(pool, log)).toBe(true);
    for (const chain of [IPTABLES!.forwardChain, 'INPUT']) {
      await run(IPTABLES!.binary, ['-w', '5', '-C', ...metadataRule(chain, pool)]);
    }
    expect(await Promise.all([blockMetadata(pool, log), blockMetadata(pool, log)])).toEqual([true, true]);
    expect(await count(IPTABLES!.forwardChain)).toBe(1);
    expect(await count('INPUT')).toBe(1);
    expect(warn).not.toHaveBeenCalled();
  });

  it.skipIf(!HAVE_DOCKER)('drops a container’s packets to 169.254.169.254 on their way out', async () => {
    const route = await run('ip', ['route', 'get', '169.254.169.254']).catch(() => '');
    if (!route || /^local /m.test(route)) return; // no route out: nothing reaches FORWARD
    expect(await blockMetadata(pool)).toBe(true);
    await ensureBusyboxImage(docker);
    const net = await networks.ensure(envId('meta'));
    const c = await docker.createContainer({ name: containerName, Image: BUSYBOX_IMAGE, ...networkCreateOptions(net.name) });
    await c.start();
    const before = await packets(IPTABLES!.forwardChain);
    const probe = await dockerExec(docker, containerName, ['sh', '-c', "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 169.254.169.254 80"]);
    expect(probe.exitCode).not.toBe(0);
    expect(probe.stdout).toBe('');
    expect(await packets(IPTABLES!.forwardChain)).toBeGreaterThan(before);
  });

  it('unblockMetadata removes them; without iptables it warns once and reports false', async () => {
    expect(await unblockMetadata(pool)).toBe(2);
    expect(await count(IPTABLES!.forwardChain)).toBe(0);
    expect(await count('INPUT')).toBe(0);
    expect(await unblockMetadata(pool)).toBe(0);

    const warn = vi.fn();
    const log = { warn, info: vi.fn(), debug: vi.fn() } as unknown as Logger;
    expect(await blockMetadata(pool, log, { binaries: ['/nonexistent/iptables'] })).toBe(false);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(await count('INPUT')).toBe(0);
  });
});

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 15_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}
