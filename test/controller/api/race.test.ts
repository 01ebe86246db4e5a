import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, type TestApi } from '../../helpers/api.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';

// 200 concurrent creates of 1-GPU environments against 3 hosts of 8 GPUs, through the API: exactly
// 24 succeed, 176 get 40902, and no GPU or port is reserved twice.

describe.each(DB_TARGETS)('concurrent placement on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('200 creates, 24 GPUs', () => {
    let api: TestApi;
    beforeAll(async () => {
      api = await createTestApi(target, { poolSize: 20 });
      await seedImage(api.db);
      for (const id of ['host-1', 'host-2', 'host-3']) await seedHost(api.db, id, { gpus: 8 });
    });
    afterAll(async () => api?.close());

    it('places exactly 24 and refuses 176 with 40902', async () => {
      const user = await api.createUser('racer');
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          api.request('POST', '/api/v1/environments', {
            token: user.token,
            body: { name: `race-${i}`, image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: 2 ** 30, gpu: 1, storage: 2 ** 30 },
          }),
        ),
      );
      const statuses = results.map((r) => r.status);
      expect(statuses.filter((s) => s === 201)).toHaveLength(24);
      expect(statuses.filter((s) => s === 409)).toHaveLength(176);
      expect(results.filter((r) => r.status === 409).every((r) => r.body.code === 40902)).toBe(true);

      const gpuDupes = await sql<{ n: number }>`
        select count(*) as n from (select host_id, gpu_uuid from gpu_reservations group by host_id, gpu_uuid having count(*) > 1) d`.execute(api.db);
      expect(Number(gpuDupes.rows[0]!.n)).toBe(0);
      const portDupes = await sql<{ n: number }>`
        select count(*) as n from (select host_id, port from port_reservations group by host_id, port having count(*) > 1) d`.execute(api.db);
      expect(Number(portDupes.rows[0]!.n)).toBe(0);
      const perHost = await sql<{ host_id: string; n: number }>`
        select host_id, count(*) as n from gpu_reservations group by host_id order by host_id`.execute(api.db);
      expect(perHost.rows.map((r) => [r.host_id, Number(r.n)])).toEqual([
        ['host-1', 8],
        ['host-2', 8],
        ['host-3', 8],
      ]);
      const envs = await api.db.selectFrom('environments').select(['id', 'host_id', 'ssh_port', 'jupyter_port']).execute();
      expect(envs).toHaveLength(24);
      const sshPorts = envs.map((e) => `${e.host_id}:${e.ssh_port}`);
      expect(new Set(sshPorts).size).toBe(24);
      const noGpu = await sql<{ n: number }>`
        select count(*) as n from environments e where (select count(*) from gpu_reservations r where r.env_id = e.id) <> 1`.execute(api.db);
      expect(Number(noGpu.rows[0]!.n)).toBe(0);
    });
  });
});
