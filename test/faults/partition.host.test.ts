import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultCluster } from './harness/cluster.js';
import { Partition } from './harness/host.js';
import { recordConvergence } from './harness/report.js';
import { CONVERGE_DEADLINE_MS, expectSound, runningEnvs, sleep } from './harness/scenario.js';

// Host-disruptive (iptables): defined only when CI=true or REMOTEGPU_FAULTS_HOST=1 (vitest.config.ts).
// One agent is cut off from the controller with iptables, both ways, on loopback addresses of its
// own: it dials the controller at 127.0.0.2 and serves on 127.0.0.3, and TCP to and from those
// address:port pairs is dropped. Its host goes offline and its environments `lost` while the other
// agent keeps serving; after the partition heals the host is back online and every environment
// running, in the very same containers.

const run = promisify(execFile);
const inspect = async (envId: string) => (await run('docker', ['inspect', '--format', '{{.Id}} {{.State.StartedAt}}', `remotegpu-${envId}`])).stdout.trim();

describe('fault: partition of one agent (iptables)', () => {
  let cluster: FaultCluster;
  beforeAll(async () => {
    await Partition.remove();
    cluster = await FaultCluster.start({
      scenario: 'partition',
      portBase: 29400,
      grpcHost: '0.0.0.0',
      agents: [{}, { listenHost: '127.0.0.3', controllerHost: '127.0.0.2' }],
    });
  }, 180_000);
  afterAll(async () => {
    await Partition.remove();
    await cluster?.stop();
  }, 120_000);

  it('the cut-off host goes offline, the other serves, and after the heal all is running again; invariants hold', async () => {
    const ids = await runningEnvs(cluster, 4, 'pt');
    const cutHost = await cluster.hostOf(1);
    const cutEnvs = (await cluster.envs()).filter((e) => e.host_id === cutHost).map((e) => e.id);
    const before = await Promise.all(ids.map(inspect));
    const [agentAddress, agentPort] = cluster.agentListen[1]!.split(':');
    const partition = new Partition([
      { address: '127.0.0.2', port: cluster.grpcPorts[0]! },
      { address: agentAddress!, port: Number(agentPort) },
    ]);
    let healedAt = 0;
    try {
      await partition.cut();
      const cutAt = Date.now();
      await cluster.waitFor('the cut-off host offline and its environments lost', async () => {
        const host = (await cluster.hosts()).find((h) => h.id === cutHost);
        return host?.status === 'offline' && (await cluster.allIn(cutEnvs, 'lost'));
      }, CONVERGE_DEADLINE_MS);
      recordConvergence('partition: host offline (timeout 6 s)', cutAt, 'partition cut');
      const during = await cluster.createEnv('pt-during', 0, 0);
      expect(during.status, JSON.stringify(during.body)).toBe(201);
      ids.push(during.body.data.env_id as string);
      before.push('');
      await cluster.waitFor('a create on the other agent running during the partition', () => cluster.allIn([ids.at(-1)!]), CONVERGE_DEADLINE_MS);
      await sleep(3000);
      await partition.heal();
      healedAt = Date.now();
    } finally {
      await Partition.remove();
    }
    await cluster.waitFor('every environment running after the heal', () => cluster.allIn(ids), CONVERGE_DEADLINE_MS);
    recordConvergence('partition heal', healedAt, 'partition healed');

    const after = await Promise.all(ids.map(inspect));
    expect(after.slice(0, -1), 'the same containers, not restarted').toEqual(before.slice(0, -1));
    await expectSound(cluster);
  }, 300_000);
});
