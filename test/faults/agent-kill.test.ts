import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultCluster } from './harness/cluster.js';
import { recordConvergence } from './harness/report.js';
import { CONVERGE_DEADLINE_MS, expectSound, runningEnvs, sleep } from './harness/scenario.js';

// One agent is killed (SIGKILL) while its environments run, and started again: it re-adopts its
// containers untouched (same container, not restarted), its host reports again and every
// environment is running; the other agent is not disturbed.

const run = promisify(execFile);
const inspect = async (envId: string) =>
  (await run('docker', ['inspect', '--format', '{{.Id}} {{.State.StartedAt}} {{.State.Status}}', `remotegpu-${envId}`])).stdout.trim();

describe('fault: agent kill -9 and restart', () => {
  let cluster: FaultCluster;
  beforeAll(async () => {
    cluster = await FaultCluster.start({ scenario: 'agent-kill', portBase: 29300 });
  }, 180_000);
  afterAll(async () => {
    await cluster?.stop();
  }, 120_000);

  it('re-adopts the containers untouched and returns to running; invariants hold', async () => {
    const ids = await runningEnvs(cluster, 6, 'ak');
    const before = await Promise.all(ids.map(inspect));
    const hostOf = new Map((await cluster.envs()).map((e) => [e.id, e.host_id]));
    const victimHost = await cluster.hostOf(0);

    await cluster.agents[0]!.kill9();
    const killedAt = Date.now();
    await sleep(2000); // an agent that stays away a moment, as after a crash and a restart by systemd
    const reportedAfter = new Date();
    cluster.agents[0]!.start();
    await cluster.waitFor('a report from the restarted agent and every environment running', async () => {
      const { rows } = await cluster.pool!.query<{ last_report_at: Date }>('SELECT last_report_at FROM hosts WHERE id = $1', [victimHost]);
      return rows[0]!.last_report_at > reportedAfter && (await cluster.allIn(ids));
    }, CONVERGE_DEADLINE_MS);
    recordConvergence('agent kill -9', killedAt, 'agent killed, restarted 2 s later');

    expect(await Promise.all(ids.map(inspect)), 'same containers, not restarted').toEqual(before);
    expect(new Map((await cluster.envs()).map((e) => [e.id, e.host_id]))).toEqual(hostOf);
    expect((await cluster.hosts()).length, 'no second host registered').toBe(2);
    await expectSound(cluster);
  }, 300_000);
});
