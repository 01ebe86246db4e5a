import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultCluster } from './harness/cluster.js';
import { recordConvergence } from './harness/report.js';
import { CONVERGE_DEADLINE_MS, expectSound, sleep } from './harness/scenario.js';

// The controller is killed (SIGKILL) in the middle of a burst of creates spread over two agents,
// then started again at once. Each client retries its create with its Idempotency-Key until it is
// answered (201, or 200 with the environment an earlier attempt created): every create ends
// running, exactly once (no environment lost, none doubled).

const BURST = 12;

describe('fault: controller kill -9 during a burst of creates (two agents)', () => {
  let cluster: FaultCluster;
  beforeAll(async () => {
    cluster = await FaultCluster.start({ scenario: 'controller-kill', portBase: 29200 });
  }, 180_000);
  afterAll(async () => {
    await cluster?.stop();
  }, 120_000);

  it('every 201 leads to a running environment; nothing lost, nothing doubled; invariants hold', async () => {
    const accepted = new Map<number, string>();
    const cutOff: number[] = [];
    const create = async (i: number) => {
      await sleep(i * 40);
      for (let attempt = 0; ; attempt++) {
        const res = await cluster.createEnv(`burst-${i}`, i % 3 === 0 ? 1 : 0, i % 2, `faults-burst-${i}`);
        // 201: created; 200: a retry of a create that was done before the answer was lost.
        if (res.status === 201 || res.status === 200) return void accepted.set(i, res.body.data.env_id as string);
        // 0: no answer (the controller is down or the connection was cut); 503: it says to retry.
        if (res.status !== 0 && res.status !== 503) throw new Error(`create ${i}: ${res.status} ${JSON.stringify(res.body)}`);
        if (attempt === 0) cutOff.push(i);
        if (attempt > 600) throw new Error(`create ${i} never answered`);
        await sleep(100);
      }
    };
    const burst = Array.from({ length: BURST }, (_, i) => create(i));
    // Kill once a third of the burst was accepted: the rest is in flight or not sent yet.
    await cluster.waitFor(`${BURST / 3} creates accepted`, async () => accepted.size >= BURST / 3, 60_000, 10);
    await cluster.controllers[0]!.kill9();
    const killedAt = Date.now();
    await cluster.startController(0);
    await Promise.all(burst);

    const ids = [...accepted.values()];
    await cluster.waitFor('every accepted environment running', () => cluster.allIn(ids), CONVERGE_DEADLINE_MS);
    recordConvergence('controller kill -9', killedAt, 'controller killed');
    console.log(`FAULT controller kill -9: ${BURST - cutOff.length} creates answered before the kill, ${cutOff.length} retried after it`);

    expect(accepted.size).toBe(BURST);
    const rows = await cluster.envs();
    expect(rows.map((e) => e.id).sort(), 'exactly the accepted environments exist').toEqual([...ids].sort());
    expect(new Set(rows.map((e) => e.host_id)).size, 'the burst spread over both agents').toBe(2);
    await expectSound(cluster);
  }, 300_000);
});
