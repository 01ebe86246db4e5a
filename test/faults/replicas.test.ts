import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultCluster } from './harness/cluster.js';
import { recordConvergence } from './harness/report.js';
import { CONVERGE_DEADLINE_MS, expectSound, lockHolder, reportTarget, runningEnvs } from './harness/scenario.js';

// Two controller replicas on one database; the agents are given both addresses. Killing (SIGKILL)
// the replica that holds the reconciler lock: the other takes the lock over and a new environment
// gets running. Killing the replica the agents report to: they fail over to the other, their hosts
// stay (or come back) online and a new environment gets running.

describe('fault: two controller replicas, kill -9 of the lock holder and of the one agents report to', () => {
  let cluster: FaultCluster;
  beforeAll(async () => {
    cluster = await FaultCluster.start({ scenario: 'replicas', portBase: 29500, controllers: 2 });
  }, 180_000);
  afterAll(async () => {
    await cluster?.stop();
  }, 120_000);

  const hostsReportedSince = async (since: Date) => {
    const { rows } = await cluster.pool!.query<{ n: string }>(`SELECT count(*) AS n FROM hosts WHERE approved AND liveness = 'online' AND last_report_at > $1`, [since]);
    return Number(rows[0]!.n) === cluster.agents.length;
  };

  it('the other replica takes over the reconciler, and the agents fail over; invariants hold', async () => {
    const ids = await runningEnvs(cluster, 4, 'rp');

    let holder = -1;
    await cluster.waitFor('a replica holding the reconciler lock', async () => (holder = await lockHolder(cluster)) >= 0, 30_000);
    await cluster.controllers[holder]!.kill9();
    const lockKilledAt = Date.now();
    const first = await cluster.createEnv('rp-after-lock-holder', 0, 0);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    ids.push(first.body.data.env_id as string);
    await cluster.waitFor('the new environment running (the other replica reconciles)', () => cluster.allIn(ids), CONVERGE_DEADLINE_MS);
    recordConvergence('replicas: lock holder killed', lockKilledAt, 'lock holder killed');

    await cluster.startController(holder);
    let target = -1;
    await cluster.waitFor('agents reporting to a replica', async () => (target = await reportTarget(cluster)) >= 0, 30_000);
    await cluster.controllers[target]!.kill9();
    const killedAt = new Date();
    await cluster.waitFor('every host reporting to the other replica', () => hostsReportedSince(new Date(killedAt.getTime() + 500)), CONVERGE_DEADLINE_MS);
    const second = await cluster.createEnv('rp-after-report-target', 0, 1);
    expect(second.status, JSON.stringify(second.body)).toBe(201);
    ids.push(second.body.data.env_id as string);
    await cluster.waitFor('every environment running', () => cluster.allIn(ids), CONVERGE_DEADLINE_MS);
    recordConvergence('replicas: report target killed', killedAt.getTime(), 'replica the agents report to killed');

    await cluster.startController(target);
    await expectSound(cluster);
  }, 300_000);
});
