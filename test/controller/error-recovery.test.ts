import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { RunningController } from '../../controller/server.js';
import { ObservedState } from '../../gen/remotegpu/v1/types.js';
import { DB_TARGETS } from '../helpers/databases.js';
import { startTestController, type TestController } from '../helpers/controller.js';
import { startTestAgent, type TestAgent } from '../helpers/test-agent.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// An environment in `error` because its container exited comes back to `running` once the agent
// reports the container running again (what Docker's restart policy does after a dockerd restart),
// with an event and its reason cleared; errors that must stick stay: a stop by the agent at the
// writable-layer limit, an OOM kill while the container stays stopped, a failed apply, a container
// the user wants stopped. Reports are sent by the test, one at a time, so "stays" means "after
// three reports that saw the container running", not a wait.

const ADMIN = 'error-recovery-admin-token-0123456789';
const JOIN = 'error-recovery-join-token-0123456789';
const GIB = 2 ** 30;
const EXITED = ObservedState.OBSERVED_STATE_EXITED;
const RUNNING = ObservedState.OBSERVED_STATE_RUNNING;

describe.each(DB_TARGETS)('error recovery on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('controller + test agent', () => {
    let platform: TestController | undefined;
    let controller: RunningController;
    let agent: TestAgent;

    const call = restCaller(() => controller.httpUrl);
    const api = (method: string, p: string, body?: unknown) => call(method, p, ADMIN, body);
    const env = async (id: string) => (await api('GET', `/api/v1/environments/${id}`)).body.data;
    const logs = async (id: string) => JSON.stringify((await api('GET', `/api/v1/environments/${id}/logs?lines=100`)).body.data);
    /** Sends reports until `check` holds (the reconciler runs meanwhile). */
    const waitFor = (what: string, check: () => Promise<boolean>) =>
      waitUntil(what, async () => {
        await agent.report();
        return check();
      }, 20_000, undefined, 100);
    const reports = async (n: number) => {
      for (let i = 0; i < n; i++) await agent.report();
    };
    const create = async (name: string) => {
      const created = await api('POST', '/api/v1/environments', { name, image: 'img:1', cpu: 1, memory: GIB, gpu: 1, storage: GIB });
      expect(created.status).toBe(201);
      const id = created.body.data.env_id as string;
      await waitFor(`${name} running`, async () => (await env(id)).status === 'running');
      return id;
    };
    /** The container exits by itself (code 137, as Docker stopping it at a daemon shutdown), seen as `error`. */
    const exits = async (id: string, patch: Parameters<TestAgent['setContainerStatus']>[1] = {}) => {
      agent.setContainerStatus(id, { state: EXITED, exitCode: 137, finishedAtMs: Date.now(), sshReady: false, ...patch });
      await waitFor(`${id} error`, async () => (await env(id)).status === 'error');
    };
    const runsAgain = (id: string) => agent.setContainerStatus(id, { state: RUNNING, exitCode: 0, oomKilled: false, startedAtMs: Date.now(), sshReady: true, stopReason: '' });

    beforeAll(async () => {
      platform = await startTestController(target, { admin: ADMIN, join: JOIN });
      controller = platform.controller;
      agent = await startTestAgent({ ...platform.agentOptions, gpus: 8 });
    });

    afterAll(async () => {
      await agent?.close();
      await platform?.close();
    });

    it('brings an environment whose container exited back to running when the container runs again', async () => {
      const id = await create('back');
      await exits(id);
      expect((await env(id)).status_reason).toBe('container exited with code 137');
      const applies = agent.calls.apply;

      runsAgain(id);
      await waitFor('running again', async () => (await env(id)).status === 'running');
      const back = await env(id);
      expect(back.status_reason).toBe('');
      expect(await logs(id)).toContain('Container running again after it exited with code 137');
      // The agent was asked to check the container against the spec (same spec: nothing recreated).
      expect(agent.calls.apply).toBe(applies + 1);
      expect(await logs(id)).not.toContain('Container recreated');
    });

    it('does the same after an OOM kill once Docker restarted the container', async () => {
      const id = await create('oom-back');
      await exits(id, { oomKilled: true });
      expect((await env(id)).status_reason).toBe('container killed for exceeding its memory limit (OOM, exit code 137)');
      runsAgain(id);
      await waitFor('running again', async () => (await env(id)).status === 'running');
      expect(await logs(id)).toContain('Container running again after it killed for exceeding its memory limit');
    });

    it('keeps an OOM kill as error while the container stays stopped', async () => {
      const id = await create('oom-stays');
      await exits(id, { oomKilled: true });
      await reports(3);
      expect(await env(id)).toMatchObject({ status: 'error', status_reason: 'container killed for exceeding its memory limit (OOM, exit code 137)' });
    });

    it('keeps a stop at the writable-layer limit as error even when the container is started behind its back', async () => {
      const id = await create('rootfs');
      const reason = 'writable layer 10.2 GiB exceeded the 10 GiB limit (REMOTEGPU_ROOTFS_LIMIT)';
      await exits(id, { exitCode: 143, stopReason: reason });
      expect((await env(id)).status_reason).toBe(`stopped: ${reason}`);
      const applies = agent.calls.apply;
      runsAgain(id);
      await reports(3);
      expect(await env(id)).toMatchObject({ status: 'error', status_reason: `stopped: ${reason}` });
      expect(agent.calls.apply).toBe(applies);
    });

    it('keeps a failed apply as error although the container runs', async () => {
      const id = await create('apply-failed');
      agent.setFailure('apply', { code: GrpcStatus.FAILED_PRECONDITION, details: 'port 30001 is already allocated' });
      expect((await api('POST', `/api/v1/environments/${id}/restart`)).status).toBe(200);
      await waitFor('error from the apply', async () => (await env(id)).status === 'error');
      agent.setFailure('apply', undefined);
      const before = await env(id);
      expect(before.status_reason).toContain('port 30001 is already allocated');
      runsAgain(id);
      await reports(3);
      expect(await env(id)).toMatchObject({ status: 'error', status_reason: before.status_reason });
    });

    it('leaves alone an environment the user wants stopped', async () => {
      const id = await create('wanted-stopped');
      await exits(id);
      expect((await api('POST', `/api/v1/environments/${id}/stop`)).status).toBe(200);
      await waitFor('stopped', async () => (await env(id)).status === 'stopped');
      runsAgain(id);
      await reports(3);
      expect((await env(id)).status).toBe('stopped');
    });
  });
});
