import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultCluster } from './harness/cluster.js';
import { restartDockerd, startDockerd } from './harness/host.js';
import { recordConvergence } from './harness/report.js';
import { CONVERGE_DEADLINE_MS, expectSound, runningEnvs } from './harness/scenario.js';

// Host-disruptive (restarts dockerd): defined only when CI=true or REMOTEGPU_FAULTS_HOST=1
// (vitest.config.ts). dockerd is stopped (SIGTERM, as a service restart does: it stops the
// containers) and started again the way .ci/run starts it. Docker restarts the environments'
// containers (restart policy unless-stopped); once both agents reported the engine's new state,
// every environment must be running (target: within 15 s of the engine answering), none left in
// `error` with its container running.

const run = promisify(execFile);
const startedAt = async (envId: string) => {
  const { stdout } = await run('docker', ['inspect', '--format', '{{.State.Running}} {{.State.StartedAt}}', `remotegpu-${envId}`]);
  const [running, at] = stdout.trim().split(' ');
  return running === 'true' ? new Date(at!).getTime() : 0;
};

describe('fault: dockerd restart', () => {
  let cluster: FaultCluster;
  beforeAll(async () => {
    cluster = await FaultCluster.start({ scenario: 'dockerd', portBase: 29700 });
  }, 180_000);
  afterAll(async () => {
    await startDockerd();
    await cluster?.stop();
  }, 180_000);

  it('every environment returns to running after the engine restarted; invariants hold', async () => {
    const ids = await runningEnvs(cluster, 6, 'dk');
    const stoppingAt = Date.now();
    let backAt: number;
    try {
      backAt = await restartDockerd();
    } finally {
      await startDockerd();
    }
    const seen = new Set<string>();
    await cluster.waitFor('every environment running, as both agents report it, in restarted containers', async () => {
      const { rows } = await cluster.pool!.query<{ n: string }>('SELECT count(*) AS n FROM hosts WHERE approved AND last_report_at > $1', [new Date(backAt + 1000)]);
      for (const e of await cluster.envs()) seen.add(e.status);
      if (Number(rows[0]!.n) !== cluster.agents.length || !(await cluster.allIn(ids))) return false;
      return (await Promise.all(ids.map(startedAt))).every((t) => t > stoppingAt);
    }, CONVERGE_DEADLINE_MS);
    recordConvergence('dockerd restart', backAt, 'engine answering again');
    console.log(`FAULT dockerd restart: statuses seen meanwhile: ${[...seen].sort().join(', ')}`);
    expect(await cluster.allIn(ids)).toBe(true);
    await expectSound(cluster);
  }, 300_000);
});
