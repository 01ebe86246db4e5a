import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningController } from '../../controller/server.js';
import { ObservedState } from '../../gen/remotegpu/v1/types.js';
import { DB_TARGETS } from '../helpers/databases.js';
import { startTestController, type TestController } from '../helpers/controller.js';
import { startTestAgent, type TestAgent } from '../helpers/test-agent.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// Storage usage end to end over real gRPC with the test agent: what an agent reports of an
// environment's storage volume and writable layer shows in the environment's detail and list; a
// container the agent stopped at the writable-layer limit becomes `error` with the agent's reason
// (not "exited with code N") and can be started again; a host under disk pressure shows it and
// takes no new environment, while a start of one already there still works.

const ADMIN = 'storage-usage-admin-token-0123456789';
const JOIN = 'storage-usage-join-token-0123456789';
const GIB = 2 ** 30;
const MIB = 2 ** 20;

describe.each(DB_TARGETS)('storage usage on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('controller + test agent', () => {
    let platform: TestController | undefined;
    let controller: RunningController;
    let agent: TestAgent;
    let envId = '';

    const call = restCaller(() => controller.httpUrl);
    const api = (method: string, p: string, body?: unknown) => call(method, p, ADMIN, body);
    const env = async () => (await api('GET', `/api/v1/environments/${envId}`)).body.data;
    const waitFor = (what: string, check: () => Promise<boolean>) => waitUntil(what, check, 20_000, undefined, 100);

    beforeAll(async () => {
      platform = await startTestController(target, { admin: ADMIN, join: JOIN });
      controller = platform.controller;
      agent = await startTestAgent({ ...platform.agentOptions, gpus: 2, diskTotalBytes: 1000 * GIB });
      agent.startReporting(100);
      const created = await api('POST', '/api/v1/environments', { name: 'u', image: 'img:1', cpu: 1, memory: GIB, gpu: 1, storage: 10 * GIB });
      expect(created.status).toBe(201);
      envId = created.body.data.env_id;
      await waitFor('running', async () => (await env()).status === 'running');
    });

    afterAll(async () => {
      await agent?.close();
      await platform?.close();
    });

    it('shows no usage before the agent measured any, then what it reports, in the detail and the list', async () => {
      const before = await env();
      expect(before).toMatchObject({ storage: 10 * GIB, storage_used: null, rootfs_used: null, usage_measured_at: null });

      agent.setContainerStatus(envId, { storageUsedBytes: 3 * GIB, rootfsUsedBytes: 200 * MIB });
      await waitFor('usage in the detail', async () => (await env()).storage_used === 3 * GIB);
      const detail = await env();
      expect(detail).toMatchObject({ storage_used: 3 * GIB, rootfs_used: 200 * MIB });
      expect(Date.parse(detail.usage_measured_at)).toBeGreaterThan(Date.now() - 60_000);
      const listed = (await api('GET', '/api/v1/environments')).body.data.items.find((e: { env_id: string }) => e.env_id === envId);
      expect(listed).toMatchObject({ storage_used: 3 * GIB, rootfs_used: 200 * MIB });

      // A figure the agent cannot tell (e.g. after its restart, before measuring again) keeps the last one.
      agent.setContainerStatus(envId, { storageUsedBytes: 4 * GIB, rootfsUsedBytes: undefined });
      await waitFor('new storage figure', async () => (await env()).storage_used === 4 * GIB);
      expect((await env()).rootfs_used).toBe(200 * MIB);

      const openapi = (await call('GET', '/api/v1/openapi.json', ADMIN)).body;
      expect(Object.keys(openapi.components.schemas.Environment.properties)).toEqual(expect.arrayContaining(['storage_used', 'rootfs_used', 'usage_measured_at']));
    });

    it('shows a stop at the writable-layer limit with its reason, and the environment can be started again', async () => {
      const reason = 'writable layer 10.2 GiB exceeded the 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT)';
      agent.pushEvent(envId, 'rootfs_limit', `Stopping the environment: ${reason}; files outside /root/workspace count against it. Start it again and delete some within 5 minutes`);
      agent.setContainerStatus(envId, { state: ObservedState.OBSERVED_STATE_EXITED, exitCode: 143, finishedAtMs: Date.now(), rootfsUsedBytes: Math.round(10.2 * GIB), stopReason: reason, sshReady: false });
      await waitFor('error with the reason', async () => (await env()).status === 'error');
      const stopped = await env();
      expect(stopped.status_reason).toBe(`stopped: ${reason}`);
      expect(stopped.rootfs_used).toBe(Math.round(10.2 * GIB));
      const logs = (await api('GET', `/api/v1/environments/${envId}/logs?lines=50`)).body.data;
      const text = JSON.stringify(logs);
      expect(text).toContain(`Stopping the environment: ${reason}`);
      expect(text).toContain(`Container stopped: ${reason}`);
      expect(text).not.toContain('Container exited with code 143');

      expect((await api('POST', `/api/v1/environments/${envId}/start`)).status).toBe(200);
      await waitFor('running again', async () => (await env()).status === 'running');
      expect((await env()).status_reason).toBe('');
    });

    it('shows disk pressure on the host; no new environment goes there, a stopped one still starts', async () => {
      const hostId = agent.hostId;
      agent.facts.diskReserveBytes = 100 * GIB;
      agent.facts.diskFreeBytes = 50 * GIB;
      agent.facts.diskPressure = true;
      await waitFor('disk pressure on the host', async () => (await api('GET', `/api/v1/admin/hosts/${hostId}`)).body.data.disk_pressure === true);
      const host = (await api('GET', `/api/v1/admin/hosts/${hostId}`)).body.data;
      expect(host).toMatchObject({ storage_total: 1000 * GIB, storage_allocated: 10 * GIB, disk_reserve: 100 * GIB, disk_free_bytes: 50 * GIB, disk_pressure: true });
      const listed = (await api('GET', '/api/v1/admin/hosts')).body.data.items.find((h: { host_id: string }) => h.host_id === hostId);
      expect(listed).toMatchObject({ disk_reserve: 100 * GIB, disk_pressure: true });

      const refused = await api('POST', '/api/v1/environments', { name: 'v', image: 'img:1', cpu: 1, memory: GIB, gpu: 0, storage: GIB });
      expect(refused.status).toBe(409);
      expect(refused.body.message).toContain('disk_pressure');

      expect((await api('POST', `/api/v1/environments/${envId}/stop`)).status).toBe(200);
      await waitFor('stopped', async () => (await env()).status === 'stopped');
      expect((await api('POST', `/api/v1/environments/${envId}/start`)).status).toBe(200);
      await waitFor('running under disk pressure', async () => (await env()).status === 'running');

      agent.facts.diskFreeBytes = 500 * GIB;
      agent.facts.diskPressure = false;
      await waitFor('pressure gone', async () => (await api('GET', `/api/v1/admin/hosts/${hostId}`)).body.data.disk_pressure === false);
      // Schedulable storage is the disk minus the reserve minus every volume: 1000 - 100 - 10 GiB.
      const tooBig = await api('POST', '/api/v1/environments', { name: 'w', image: 'img:1', cpu: 1, memory: GIB, gpu: 0, storage: 891 * GIB });
      expect(tooBig.status).toBe(409);
      expect(tooBig.body.message).toContain('890 GiB storage free');
      const fits = await api('POST', '/api/v1/environments', { name: 'w', image: 'img:1', cpu: 1, memory: GIB, gpu: 0, storage: 890 * GIB });
      expect(fits.status).toBe(201);
    });
  });
});
