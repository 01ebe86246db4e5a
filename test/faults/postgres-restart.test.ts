import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultCluster } from './harness/cluster.js';
import { restartSuitePostgres } from './harness/postgres.js';
import { recordConvergence } from './harness/report.js';
import { CONVERGE_DEADLINE_MS, expectSound, runningEnvs, sleep } from './harness/scenario.js';

// The suite's PostgreSQL server is restarted (`pg_ctl restart -m fast`: every connection is
// terminated, 57P01) while creates, stops and starts are in flight. The controller must not crash;
// its API answers again by itself once the database is back (target: within 2 s), and every
// environment settles where it was asked to be. During the outage a request may fail, never crash
// a process.

describe('fault: PostgreSQL restart under load', () => {
  let cluster: FaultCluster;
  beforeAll(async () => {
    cluster = await FaultCluster.start({ scenario: 'postgres-restart', portBase: 29600 });
  }, 180_000);
  afterAll(async () => {
    await cluster?.stop();
  }, 120_000);

  it('the controller survives, answers again soon after the database is back, and everything settles', async () => {
    const ids = await runningEnvs(cluster, 4, 'pg');
    const answers = new Map<number, number>();
    let loading = true;
    let n = 0;
    // Load: a create, a stop or a start every ~100 ms, whatever the answers are.
    const load = (async () => {
      while (loading) {
        const i = n++;
        const target = ids[i % ids.length]!;
        const res =
          i % 3 === 0
            ? await cluster.createEnv(`pg-load-${i}`, 0, i % 2)
            : await cluster.api('POST', `/api/v1/environments/${target}/${i % 3 === 1 ? 'stop' : 'start'}`);
        answers.set(res.status, (answers.get(res.status) ?? 0) + 1);
        await sleep(100);
      }
    })();
    await sleep(1500);
    const backAt = await restartSuitePostgres(1000);
    await cluster.waitFor('the API answering again', async () => (await cluster.api('GET', '/api/v1/environments?page_size=1')).status === 200, CONVERGE_DEADLINE_MS, 50);
    recordConvergence('PostgreSQL restart: API back', backAt, 'database back');
    await sleep(1500);
    loading = false;
    await load;
    await cluster.waitFor('every environment where it was asked to be', async () => {
      const rows = (await cluster.envs()).filter((e) => e.deleted_at === null);
      return rows.length > 0 && rows.every((e) => e.status === e.desired_state);
    }, CONVERGE_DEADLINE_MS);
    recordConvergence('PostgreSQL restart: all settled', backAt, 'database back');
    console.log(`FAULT PostgreSQL restart: answers during the load ${JSON.stringify(Object.fromEntries(answers))}`);

    expect([...answers.keys()].filter((s) => s >= 500 && s !== 503), 'no 500 "internal error" for an outage').toEqual([]);
    await expectSound(cluster);
  }, 300_000);
});
