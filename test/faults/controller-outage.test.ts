import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultCluster } from './harness/cluster.js';
import { recordConvergence } from './harness/report.js';
import { CONVERGE_DEADLINE_MS, expectSound, runningEnvs, sleep } from './harness/scenario.js';

// The controller is away for a while (killed, started again after REMOTEGPU_FAULTS_OUTAGE_S, 60 s
// by default; the closing figures use 180 s): both agents must be back, reporting, within seconds
// of the controller being back (target: 10 s), whatever the outage's length, and every
// environment running again.

const OUTAGE_S = Number(process.env.REMOTEGPU_FAULTS_OUTAGE_S ?? 60);

describe(`fault: controller outage of ${OUTAGE_S} s`, () => {
  let cluster: FaultCluster;
  beforeAll(async () => {
    cluster = await FaultCluster.start({ scenario: 'controller-outage', portBase: 29900 });
  }, 180_000);
  afterAll(async () => {
    await cluster?.stop();
  }, 120_000);

  it('the agents are back soon after the controller is; invariants hold', async () => {
    const ids = await runningEnvs(cluster, 2, 'co');
    await cluster.controllers[0]!.kill9();
    await sleep(OUTAGE_S * 1000);
    await cluster.startController(0);
    const backAt = new Date();
    await cluster.waitFor('both agents reporting again', async () => {
      const { rows } = await cluster.pool!.query<{ n: string }>(`SELECT count(*) AS n FROM hosts WHERE approved AND liveness = 'online' AND last_report_at > $1`, [backAt]);
      return Number(rows[0]!.n) === cluster.agents.length;
    }, CONVERGE_DEADLINE_MS, 50);
    recordConvergence(`agents back after a ${OUTAGE_S} s controller outage`, backAt.getTime(), 'controller back');
    await cluster.waitFor('every environment running', () => cluster.allIn(ids), CONVERGE_DEADLINE_MS);
    expect(await cluster.allIn(ids)).toBe(true);
    await expectSound(cluster);
  }, 300_000 + OUTAGE_S * 1000);
});
