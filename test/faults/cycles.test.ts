import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerExec, testDocker } from '../helpers/docker.js';
import { FaultCluster } from './harness/cluster.js';
import { median, recordSeconds } from './harness/report.js';
import { CONVERGE_DEADLINE_MS, expectSound, runningEnvs } from './harness/scenario.js';

// 20 cycles of stop, start with another GPU count (0, 1, 2: the container is recreated), restart,
// on one environment whose storage holds a file: after every cycle the file's sha256 is the same,
// the environment runs with the GPUs asked for, and the invariants hold.

const CYCLES = Number(process.env.REMOTEGPU_FAULTS_CYCLES ?? 20);
const FILE = '/root/workspace/faults-blob';

describe(`fault: ${CYCLES} stop/start/restart/GPU-change cycles keep the data`, () => {
  let cluster: FaultCluster;
  beforeAll(async () => {
    cluster = await FaultCluster.start({ scenario: 'cycles', portBase: 29800, agents: [{}] });
  }, 180_000);
  afterAll(async () => {
    await cluster?.stop();
  }, 120_000);

  const sha256 = async (id: string) => {
    const out = await dockerExec(testDocker(), `remotegpu-${id}`, ['sha256sum', FILE]);
    expect(out.exitCode, out.stderr).toBe(0);
    return out.stdout.split(/\s+/)[0]!;
  };
  const act = async (id: string, action: string, body?: unknown) => {
    const res = await cluster.api('POST', `/api/v1/environments/${id}/${action}`, body);
    expect(res.status, `${action}: ${JSON.stringify(res.body)}`).toBe(200);
  };
  const reach = (id: string, status: string) => cluster.waitFor(`${id} ${status}`, () => cluster.allIn([id], status), CONVERGE_DEADLINE_MS, 50);

  it('the file survives every cycle; invariants hold after each', async () => {
    const [id] = await runningEnvs(cluster, 1, 'cy');
    const write = await dockerExec(testDocker(), `remotegpu-${id}`, ['sh', '-c', `head -c 4194304 /dev/urandom > ${FILE} && sync`]);
    expect(write.exitCode, write.stderr).toBe(0);
    const expected = await sha256(id!);
    const times: number[] = [];
    for (let i = 0; i < CYCLES; i++) {
      const started = Date.now();
      const gpu = (i + 1) % 3;
      await act(id!, 'stop');
      await reach(id!, 'stopped');
      await act(id!, 'start', { gpu });
      await reach(id!, 'running');
      await act(id!, 'restart');
      await reach(id!, 'running');
      times.push((Date.now() - started) / 1000);
      expect(await sha256(id!), `cycle ${i + 1}`).toBe(expected);
      const { rows } = await cluster.pool!.query<{ n: string }>('SELECT count(*) AS n FROM gpu_reservations WHERE env_id = $1', [id]);
      expect(Number(rows[0]!.n), `cycle ${i + 1}: GPUs reserved`).toBe(gpu);
      await expectSound(cluster);
    }
    recordSeconds('stop/start/restart/GPU cycle', median(times), `median of ${CYCLES} cycles`);
  }, 600_000);
});
