import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { RunningController } from '../../controller/server.js';
import { DB_TARGETS } from '../helpers/databases.js';
import { startTestController, type TestController } from '../helpers/controller.js';
import { startTestAgent, type TestAgent } from '../helpers/test-agent.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// Docker's error text names host paths (a dataset's directory, the agent's run directory). When an
// agent refuses an environment, its user sees the status_reason and the log line with those paths
// replaced; an admin sees the full text in status_reason.

const ADMIN = 'redaction-admin-token-0123456789';
const JOIN = 'redaction-join-token-0123456789';
const DATASET_PATH = '/mnt/datasets/imagenet-private-2026';
const RUN_DIR = '/var/lib/remotegpu/run/views';

describe.each(DB_TARGETS)('status_reason without host paths for users on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('controller + test agent', () => {
    let platform: TestController | undefined;
    let controller: RunningController;
    let agent: TestAgent;
    let userToken = '';
    const call = restCaller(() => controller.httpUrl);
    const admin = (method: string, p: string, body?: unknown) => call(method, p, ADMIN, body);
    const user = (method: string, p: string, body?: unknown) => call(method, p, userToken, body);

    beforeAll(async () => {
      platform = await startTestController(target, { admin: ADMIN, join: JOIN });
      controller = platform.controller;
      agent = await startTestAgent({ ...platform.agentOptions, gpus: 1 });
      agent.startReporting(200);
      const alice = await admin('POST', '/api/v1/admin/users', { name: 'alice' });
      const token = await admin('POST', `/api/v1/admin/users/${alice.body.data.id}/tokens`, { name: 't' });
      userToken = token.body.data.token;
    });

    afterAll(async () => {
      await agent?.close();
      await platform?.close();
    });

    it('shows users the refusal without host paths, admins in full, and keeps them out of the user-visible logs', async () => {
      const ds = await admin('POST', '/api/v1/admin/datasets', { name: 'imagenet', host_path: DATASET_PATH });
      expect(ds.status).toBe(201);
      const created = await user('POST', '/api/v1/environments', { name: 'e', image: 'img:1', cpu: 1, memory: 2 ** 30, storage: 2 ** 30 });
      expect(created.status).toBe(201);
      const envId: string = created.body.data.env_id;
      await waitUntil('running', async () => (await user('GET', `/api/v1/environments/${envId}`)).body.data.status === 'running', 20_000, undefined, 100);

      const dockerText =
        `Error response from daemon: error while creating mount source path '${DATASET_PATH}': mkdir ${DATASET_PATH}: read-only file system; ` +
        `error mounting "${RUN_DIR}/${envId}/1" to rootfs at "/data/imagenet"`;
      agent.setFailure('apply', { code: GrpcStatus.FAILED_PRECONDITION, details: dockerText });
      const mounted = await user('POST', `/api/v1/environments/${envId}/datasets`, { dataset_id: ds.body.data.id, mount_path: '/data/imagenet' });
      expect(mounted.status).toBe(200);
      await waitUntil('error', async () => (await user('GET', `/api/v1/environments/${envId}`)).body.data.status === 'error', 20_000, undefined, 100);

      const seenByUser: string = (await user('GET', `/api/v1/environments/${envId}`)).body.data.status_reason;
      expect(seenByUser).toContain("error while creating mount source path '<dataset imagenet>': mkdir <dataset imagenet>: read-only file system");
      expect(seenByUser).toContain('error mounting "<host path>" to rootfs at "/data/imagenet"');
      expect(seenByUser).not.toContain('/mnt/datasets');
      expect(seenByUser).not.toContain('/var/lib');
      const listed = (await user('GET', '/api/v1/environments')).body.data.items.find((e: { env_id: string }) => e.env_id === envId);
      expect(listed.status_reason).toBe(seenByUser);

      const seenByAdmin: string = (await admin('GET', `/api/v1/environments/${envId}`)).body.data.status_reason;
      expect(seenByAdmin).toContain(dockerText);

      const logs = (await user('GET', `/api/v1/environments/${envId}/logs?lines=50`)).body.data.logs as string[];
      expect(logs.some((l) => l.includes('Error:') && l.includes('<dataset imagenet>'))).toBe(true);
      expect(logs.join('\n')).not.toContain(DATASET_PATH);
      expect(logs.join('\n')).not.toContain(RUN_DIR);

      // A later reason without host paths clears the admin's full text: both see the same again.
      agent.setFailure('apply', undefined);
      expect((await user('POST', `/api/v1/environments/${envId}/restart`)).status).toBe(200);
      await waitUntil('running again', async () => (await user('GET', `/api/v1/environments/${envId}`)).body.data.status === 'running', 20_000, undefined, 100);
      expect((await admin('GET', `/api/v1/environments/${envId}`)).body.data.status_reason).toBe('');
    });

    it("shows users the agent's log error without host paths", async () => {
      const envId: string = (await user('GET', '/api/v1/environments')).body.data.items[0].env_id;
      agent.setFailure('streamLogs', { code: GrpcStatus.INTERNAL, details: `open /var/lib/docker/containers/abc/abc-json.log: no such file or directory` });
      try {
        const logs = (await user('GET', `/api/v1/environments/${envId}/logs?lines=5`)).body.data.logs as string[];
        expect(logs.some((l) => l.includes('(container output unavailable: ') && l.includes('open <host path>: no such file or directory'))).toBe(true);
        expect(logs.join('\n')).not.toContain('/var/lib/docker');
      } finally {
        agent.setFailure('streamLogs', undefined);
      }
    });
  });
});
