import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningController } from '../../../controller/server.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { startTestController, type TestController } from '../../helpers/controller.js';
import { startTestAgent, type TestAgent } from '../../helpers/test-agent.js';
import { restCaller } from '../../helpers/rest.js';

// An agent that lost its identity (data directory wiped) registers again as a new host and reports
// the same physical GPUs (same UUIDs) while environments of its former host still hold them. The
// GPUs stay taken under the new host id, and the new host is linked to the former one through the
// machine id both reported.

const ADMIN = 'rereg-admin-token-0123456789';
const JOIN = 'rereg-join-token-0123456789';
const MACHINE = '4c4c4544003957108052b4c04f384833';
const PHYSICAL = [{ uuid: 'GPU-3f1c9b2e-0000-4a5b-8c7d-000000000000' }, { uuid: 'GPU-3f1c9b2e-0001-4a5b-8c7d-000000000001' }];

describe.each(DB_TARGETS)('a machine registered again under a new host id on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('controller + two test agents of one machine', () => {
    let platform: TestController | undefined;
    let controller: RunningController;
    let before: TestAgent;
    let after: TestAgent;
    let other: TestAgent;
    let envId = '';
    const call = restCaller(() => controller.httpUrl);
    const admin = (method: string, p: string, body?: unknown) => call(method, p, ADMIN, body);
    const hostRow = async (id: string) => (await admin('GET', `/api/v1/admin/hosts/${id}`)).body.data;

    beforeAll(async () => {
      platform = await startTestController(target, { admin: ADMIN, join: JOIN });
      controller = platform.controller;
      const { agentOptions } = platform;
      before = await startTestAgent({ ...agentOptions, gpus: PHYSICAL, machineId: MACHINE, hostname: 'gpu-07' });
      // An unrelated machine registered in between: the link goes by machine id, not by order.
      other = await startTestAgent({ ...agentOptions, gpus: 0, machineId: 'another-machine-id', hostname: 'cpu-01' });
    });

    afterAll(async () => {
      await before?.close();
      await after?.close();
      await other?.close();
      await platform?.close();
    });

    it('keeps GPUs held under the former host id taken under the new one, and links the two hosts', async () => {
      const created = await admin('POST', '/api/v1/environments', { name: 'train', image: 'img:1', cpu: 2, memory: 2 ** 30, gpu: 2, storage: 2 ** 30 });
      expect(created.status).toBe(201);
      envId = created.body.data.env_id;
      expect(created.body.data.host_id).toBe(before.hostId);

      // The same machine, identity lost: a new registration with the same GPUs and machine id.
      before.stopReporting();
      after = await startTestAgent({
        controllerAddress: `127.0.0.1:${controller.grpcPort}`,
        joinToken: JOIN,
        caPem: controller.services.trust.ca.certPem,
        gpus: PHYSICAL,
        machineId: MACHINE,
        hostname: 'gpu-07',
      });
      expect(after.hostId).not.toBe(before.hostId);

      // The new host's GPUs are held by the environment of the former host: nothing fits.
      const refused = await admin('POST', '/api/v1/environments', { name: 'second', image: 'img:1', cpu: 1, memory: 2 ** 30, gpu: 1, storage: 2 ** 30 });
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe(40902);
      // Said by the scheduler (the GPUs are not free), not found out by a failed insert.
      expect(refused.body.message).toMatch(/no host has 1 free GPU/);
      const reservations = await controller.database.db.selectFrom('gpu_reservations').select(['host_id', 'gpu_uuid', 'env_id']).orderBy('gpu_uuid').execute();
      expect(reservations).toEqual(PHYSICAL.map((g) => ({ host_id: before.hostId, gpu_uuid: g.uuid, env_id: envId })));

      // What admins see: the link both ways, the machine id, and the GPUs as held.
      const newHost = await hostRow(after.hostId);
      expect(newHost).toMatchObject({ replaces_host_id: before.hostId, replaced_by_host_id: null, machine_id: MACHINE, gpus_allocated: 2 });
      expect(newHost.gpus.map((g: { uuid: string; env_id: string | null }) => [g.uuid, g.env_id])).toEqual(PHYSICAL.map((g) => [g.uuid, envId]));
      const formerHost = await hostRow(before.hostId);
      expect(formerHost).toMatchObject({ replaces_host_id: null, replaced_by_host_id: after.hostId, gpus_allocated: 2 });
      expect((await hostRow(other.hostId)).replaces_host_id).toBeNull();
      const listed = (await admin('GET', '/api/v1/admin/hosts')).body.data.items;
      expect(listed.find((h: { host_id: string }) => h.host_id === after.hostId).replaces_host_id).toBe(before.hostId);

      // The environment was not moved: it stays on its host.
      expect((await admin('GET', `/api/v1/environments/${envId}`)).body.data.host_id).toBe(before.hostId);

      // A CPU-only environment still fits on the new host.
      const cpuOnly = await admin('POST', '/api/v1/environments', { name: 'cpu', image: 'img:1', cpu: 1, memory: 2 ** 30, gpu: 0, storage: 2 ** 30 });
      expect(cpuOnly.status).toBe(201);
    });

    it('refuses a second reservation of a GPU UUID under another host id in the database itself', async () => {
      const attempt = controller.database.db
        .insertInto('gpu_reservations')
        .values({ host_id: after.hostId, gpu_uuid: PHYSICAL[0]!.uuid, env_id: envId })
        .execute();
      await expect(attempt).rejects.toThrow(/duplicate key|unique/i);
    });
  });
});
