import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, serveControlPlane, type ServedControlPlane, type TestApi } from '../../helpers/api.js';
import { seedImage } from '../../helpers/hosts.js';
import { startTestAgent, type TestAgent } from '../../helpers/test-agent.js';
import { configuredPortRanges, loadControllerConfig } from '../../../controller/config.js';
import { addressesOverlap, ephemeralOverlapWarnings } from '../../../common/ports.js';

// Issue 15, item 4 and 9b: published-port collisions. The port picker skips the ports a host's
// agent reports busy and the ports other hosts of the same machine hold on an overlapping publish
// address; an agent that finds a port taken when it starts the container makes the controller move
// the environment to a free port (with an event) instead of leaving it in `error`.

const SSH = { from: 30400, to: 30499 };
const JUPYTER = { from: 30500, to: 30599 };

describe('port defaults', () => {
  it('default SSH and Jupyter ranges lie below Linux’s ephemeral range (32768-60999)', () => {
    const config = loadControllerConfig({});
    expect(config.sshPortRange).toEqual({ from: 20000, to: 24999 });
    expect(config.jupyterPortRange).toEqual({ from: 25000, to: 28999 });
    for (const r of [config.sshPortRange, config.jupyterPortRange]) expect(r.to).toBeLessThan(32768);
    // What the controller checks at start (and per host, from its agent's report): quiet for the
    // defaults, one warning per range for the old ones.
    const linux = { from: 32768, to: 60999 };
    expect(ephemeralOverlapWarnings(configuredPortRanges(config), linux, 'this machine')).toEqual([]);
    const old = loadControllerConfig({ REMOTEGPU_SSH_PORT_RANGE: '30000-39999', REMOTEGPU_JUPYTER_PORT_RANGE: '50000-59999' });
    expect(ephemeralOverlapWarnings(configuredPortRanges(old), linux, 'this machine')).toHaveLength(2);
  });

  it('publish addresses overlap when equal, or either is a wildcard or unknown', () => {
    expect(addressesOverlap('127.0.0.2', '127.0.0.3')).toBe(false);
    expect(addressesOverlap('127.0.0.2', '127.0.0.2')).toBe(true);
    expect(addressesOverlap('0.0.0.0', '127.0.0.3')).toBe(true);
    expect(addressesOverlap('', '10.0.0.1')).toBe(true);
  });
});

describe.each(DB_TARGETS)('published ports on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('busy ports, machines shared by several agents, ports taken at start', () => {
    let api: TestApi;
    let controlPlane: ServedControlPlane | undefined;
    const agents: TestAgent[] = [];
    const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });
    const create = async (name: string, extra: Record<string, unknown> = {}) => {
      const res = await admin('POST', '/api/v1/environments', { name, image: 'img:1', cpu: 1, memory: 2 ** 30, gpu: 0, storage: 2 ** 30, ...extra });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body.data as { env_id: string; host_id: string; ssh_port: number; jupyter_port: number | null };
    };
    const envRow = (id: string) => api.db.selectFrom('environments').select(['status', 'ssh_port', 'jupyter_port', 'host_id', 'status_reason']).where('id', '=', id).executeTakeFirstOrThrow();
    const reservations = (hostIds: string[]) =>
      api.db.selectFrom('port_reservations').select(['host_id', 'port', 'env_id']).where('host_id', 'in', hostIds).orderBy('port').execute();

    beforeAll(async () => {
      api = await createTestApi(target, { env: { REMOTEGPU_SSH_PORT_RANGE: `${SSH.from}-${SSH.to}`, REMOTEGPU_JUPYTER_PORT_RANGE: `${JUPYTER.from}-${JUPYTER.to}` } });
      controlPlane = await serveControlPlane(api);
      await seedImage(api.db, 'img:1', 'img:1');
    });
    afterAll(async () => {
      for (const a of agents) await a.close();
      await controlPlane?.close();
      await api?.close();
    });

    /** Only `host` takes new environments (the others are cordoned by disapproval). */
    const only = async (host: TestAgent) => {
      await api.db.updateTable('hosts').set({ approved: false }).execute();
      await api.db.updateTable('hosts').set({ approved: true }).where('id', '=', host.hostId).execute();
    };

    it('skips the ports the host’s agent reports busy (stored from the report)', async () => {
      const agent = await startTestAgent({ ...controlPlane!.agentOptions, busyPorts: [30400, 30401, 30500], publishAddress: '0.0.0.0', cpuCores: 64 });
      agents.push(agent);
      await only(agent);
      const host = await api.db.selectFrom('hosts').select(['busy_ports', 'publish_address']).where('id', '=', agent.hostId).executeTakeFirstOrThrow();
      expect(host).toEqual({ busy_ports: [30400, 30401, 30500], publish_address: '0.0.0.0' });
      const env = await create('busy');
      expect(env.ssh_port).toBe(30402);
      expect(env.jupyter_port).toBe(30501);
      // A later report frees 30400: the next environment gets it.
      agent.facts.busyPorts = [30401];
      await agent.report();
      expect((await create('freed')).ssh_port).toBe(30400);
    });

    it('hosts of one machine on overlapping publish addresses never get the same port; distinct addresses may', async () => {
      const machineId = `machine-${process.pid}`;
      const a = await startTestAgent({ ...controlPlane!.agentOptions, machineId, publishAddress: '127.0.0.1', cpuCores: 64 });
      const b = await startTestAgent({ ...controlPlane!.agentOptions, machineId, publishAddress: '127.0.0.1', cpuCores: 64 });
      const c = await startTestAgent({ ...controlPlane!.agentOptions, machineId, publishAddress: '127.0.0.3', cpuCores: 64 });
      agents.push(a, b, c);
      const made: { host: string; ssh: number; jupyter: number | null }[] = [];
      for (const [i, host] of [a, b, a, b, c].entries()) {
        await only(host);
        const env = await create(`shared-${i}`);
        expect(env.host_id).toBe(host.hostId);
        made.push({ host: host.hostId, ssh: env.ssh_port, jupyter: env.jupyter_port });
      }
      const onLoopback = made.filter((m) => m.host !== c.hostId).flatMap((m) => [m.ssh, m.jupyter]);
      expect(new Set(onLoopback).size).toBe(onLoopback.length);
      // c publishes on another address of the machine: its ports may repeat a's and b's.
      expect(made[4]!.ssh).toBe(SSH.from);
      const rows = await reservations([a.hostId, b.hostId]);
      expect(new Set(rows.map((r) => r.port)).size).toBe(rows.length);
    });

    it('a port taken on the host when the container starts: the environment moves to a free port, with an event, and runs', async () => {
      const taken = new Set<number>();
      const agent = await startTestAgent({ ...controlPlane!.agentOptions, portsInUse: taken, publishAddress: '0.0.0.0', cpuCores: 64 });
      agents.push(agent);
      await only(agent);
      // Something on the host took the next SSH port after the agent's last report.
      const next = 30400 + (await reservations([agent.hostId])).length;
      taken.add(next);
      const env = await create('moved');
      expect(env.ssh_port).toBe(next);
      await api.services.reconciler.runOnce();
      await api.services.reconciler.runOnce();
      const row = await envRow(env.env_id);
      expect(row.status).toBe('running');
      expect(row.ssh_port).not.toBe(next);
      expect(agent.containers.get(env.env_id)!.spec.ports.find((p) => p.name === 'ssh')!.hostPort).toBe(row.ssh_port);
      const events = await api.db.selectFrom('environment_events').select(['kind', 'message']).where('env_id', '=', env.env_id).where('kind', '=', 'port_moved').execute();
      expect(events).toEqual([{ kind: 'port_moved', message: `SSH port ${next} was in use on the host; moved to ${row.ssh_port}` }]);
      // The old port is released and remembered as busy until the next report.
      const held = (await reservations([agent.hostId])).filter((r) => r.env_id === env.env_id).map((r) => r.port);
      expect(held).toContain(row.ssh_port);
      expect(held).not.toContain(next);
      const host = await api.db.selectFrom('hosts').select('busy_ports').where('id', '=', agent.hostId).executeTakeFirstOrThrow();
      expect(host.busy_ports).toContain(next);
      // Access info shows the new port.
      const got = await admin('GET', `/api/v1/environments/${env.env_id}`);
      expect(got.body.data.ssh_port).toBe(row.ssh_port);
      expect(got.body.data.access_info.ssh).toContain(`-p ${row.ssh_port}`);
    });

    it('a stopped environment whose port was taken meanwhile moves when started', async () => {
      const taken = new Set<number>();
      const agent = await startTestAgent({ ...controlPlane!.agentOptions, portsInUse: taken, publishAddress: '0.0.0.0', cpuCores: 64 });
      agents.push(agent);
      await only(agent);
      const env = await create('restart-moved');
      await api.services.reconciler.runOnce();
      expect((await envRow(env.env_id)).status).toBe('running');
      expect((await admin('POST', `/api/v1/environments/${env.env_id}/stop`)).status).toBe(200);
      await api.services.reconciler.runOnce();
      expect((await envRow(env.env_id)).status).toBe('stopped');
      taken.add(env.ssh_port);
      expect((await admin('POST', `/api/v1/environments/${env.env_id}/start`)).status).toBe(200);
      await api.services.reconciler.runOnce();
      await api.services.reconciler.runOnce();
      const row = await envRow(env.env_id);
      expect(row).toMatchObject({ status: 'running' });
      expect(row.ssh_port).not.toBe(env.ssh_port);
    });
  });
});
