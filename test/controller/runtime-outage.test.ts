import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import type { RunningController } from '../../controller/server.js';
import { ObservedState } from '../../gen/remotegpu/v1/types.js';
import { DB_TARGETS } from '../helpers/databases.js';
import { startTestController, type TestController } from '../helpers/controller.js';
import { startTestAgent, type TestAgent } from '../helpers/test-agent.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// A report from an agent whose container runtime (Docker) does not answer (runtime_unavailable,
// no containers listed): the host stays online, no environment changes status or observed state
// (no `lost`, `error` or "container missing"), the host shows the runtime's error to admins, its
// events are still recorded, and the reconciler sends the host no calls. The first report after
// the runtime answers again starts what the outage stopped, whether the environment went `error`
// just before it or its container is simply found exited, and retries at once what was put off.
// Reports are sent by the test, one at a time.

const ADMIN = 'runtime-outage-admin-token-0123456789';
const JOIN = 'runtime-outage-join-token-0123456789';
const GIB = 2 ** 30;
const EXITED = ObservedState.OBSERVED_STATE_EXITED;
const DOWN = 'Docker engine unreachable while listing containers: connect ENOENT /run/test-docker.sock';

describe.each(DB_TARGETS)('container runtime outage on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('controller + test agent', () => {
    let platform: TestController | undefined;
    let controller: RunningController;
    let agent: TestAgent;

    const call = restCaller(() => controller.httpUrl);
    const api = (method: string, p: string, body?: unknown) => call(method, p, ADMIN, body);
    const env = async (id: string) => (await api('GET', `/api/v1/environments/${id}`)).body.data;
    const host = async () => (await api('GET', `/api/v1/admin/hosts/${agent.hostId}`)).body.data;
    const logs = async (id: string) => JSON.stringify((await api('GET', `/api/v1/environments/${id}/logs?lines=100`)).body.data);
    const row = (id: string) => controller.database.db.selectFrom('environments').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const waitFor = (what: string, check: () => Promise<boolean>, report: () => Promise<unknown> = () => agent.report()) =>
      waitUntil(what, async () => {
        await report();
        return check();
      }, 20_000, undefined, 100);
    const create = async (name: string) => {
      const created = await api('POST', '/api/v1/environments', { name, image: 'img:1', cpu: 1, memory: GIB, gpu: 1, storage: GIB });
      expect(created.status).toBe(201);
      const id = created.body.data.env_id as string;
      await waitFor(`${name} running`, async () => (await env(id)).status === 'running');
      return id;
    };

    beforeAll(async () => {
      // A short host timeout: the outage below lasts longer than it.
      platform = await startTestController(target, { admin: ADMIN, join: JOIN }, { REMOTEGPU_HOST_TIMEOUT_MS: '1000' });
      controller = platform.controller;
      agent = await startTestAgent({ ...platform.agentOptions, gpus: 8 });
    });

    afterAll(async () => {
      await agent?.close();
      await platform?.close();
    });

    it('keeps the host online and every environment as it was while the runtime is down, then restarts what the outage stopped', async () => {
      const untouched = await create('untouched');
      const errored = await create('errored');
      const notRestarted = await create('not-restarted');
      const stopLater = await create('stop-later');
      const before = await Promise.all([untouched, notRestarted, stopLater].map(row));

      // Docker stops the containers on its way down: one report still sees `errored` exit.
      agent.setContainerStatus(errored, { state: EXITED, exitCode: 143, finishedAtMs: Date.now(), sshReady: false });
      await waitFor('errored in error', async () => (await env(errored)).status === 'error');

      // Then Docker does not answer. Reports go on, flagged, with one event the agent had buffered.
      agent.pushEvent(untouched, 'exited', 'Container exited with code 143');
      const calls = { ...agent.calls };
      await agent.report({ runtimeError: DOWN });
      expect(await host()).toMatchObject({ status: 'online', runtime_error: DOWN });
      expect(Date.parse((await host()).runtime_unavailable_since)).not.toBeNaN();
      // A stop asked for meanwhile waits for the runtime; an old backoff must not delay it after.
      expect((await api('POST', `/api/v1/environments/${stopLater}/stop`)).status).toBe(200);
      await controller.database.db
        .updateTable('environments')
        .set({ attempt_generation: sql`spec_generation`, attempt_count: 6, next_attempt_at: sql`now() + interval '1 hour'` })
        .where('id', '=', stopLater)
        .execute();
      // A new environment is not placed there.
      const during = await api('POST', '/api/v1/environments', { name: 'during', image: 'img:1', cpu: 1, memory: GIB, gpu: 1, storage: GIB });
      expect(during.status).toBe(409);
      expect(during.body.message).toBe('no host is taking new environments (1 host: 1 runtime_unavailable); try again later or ask an operator');
      // Longer than the host timeout, with reconciler passes between the reports.
      const started = Date.now();
      while (Date.now() - started < 2_500) {
        await agent.report({ runtimeError: DOWN });
        await controller.services.reconciler.runOnce();
        await new Promise((r) => setTimeout(r, 200));
      }
      expect((await host()).status).toBe('online');
      for (const [i, id] of [untouched, notRestarted].entries()) {
        const now = await row(id);
        expect(now).toMatchObject({ status: 'running', observed_state: before[i]!.observed_state, spec_generation: before[i]!.spec_generation });
      }
      expect(await row(errored)).toMatchObject({ status: 'error', status_reason: 'container exited with code 143' });
      expect(await row(stopLater)).toMatchObject({ status: 'stopping', desired_state: 'stopped' });
      expect(agent.calls).toEqual(calls);
      expect(await logs(untouched)).toContain('Container exited with code 143');

      // Docker is back: it restarted `errored` (restart policy) but not `not-restarted`.
      agent.setContainerStatus(errored, { state: ObservedState.OBSERVED_STATE_RUNNING, exitCode: 0, startedAtMs: Date.now(), sshReady: true });
      agent.setContainerStatus(notRestarted, { state: EXITED, exitCode: 143, finishedAtMs: Date.now(), sshReady: false });
      await agent.report();
      expect((await host()).runtime_error).toBe('');
      expect((await host()).runtime_unavailable_since).toBeNull();
      await waitFor('everything converged', async () => {
        const all = await Promise.all([untouched, errored, notRestarted, stopLater].map(env));
        return all.map((e) => e.status).join() === 'running,running,running,stopped';
      });
      expect(agent.containers.get(notRestarted)!.status.state).toBe(ObservedState.OBSERVED_STATE_RUNNING);
      expect(await logs(errored)).toContain('Container runtime (Docker) answers again after an outage');
      expect((await env(errored)).status_reason).toBe('');
      expect(agent.calls.stop).toBeGreaterThan(calls.stop);
    });

    it('restarts what the outage stopped even when the first report after it fails in the observer (the controller lost its database or died)', async () => {
      const id = await create('observer-failed');
      await agent.report({ runtimeError: DOWN });
      agent.setContainerStatus(id, { state: EXITED, exitCode: 143, finishedAtMs: Date.now(), sshReady: false });
      const observer = controller.services.hostObserver as { onReport: (...args: never[]) => Promise<void> };
      const real = observer.onReport;
      observer.onReport = async () => {
        throw new Error('Connection terminated unexpectedly');
      };
      try {
        await expect(agent.report()).rejects.toThrow();
      } finally {
        observer.onReport = real;
      }
      // Its container started again by the controller (before: status `error`, the exit, for good).
      await waitFor('observer-failed started again', async () => {
        await controller.services.reconciler.runOnce();
        return agent.containers.get(id)!.status.state === ObservedState.OBSERVED_STATE_RUNNING && (await env(id)).status === 'running';
      });
      expect((await host()).runtime_unavailable_since).toBeNull();
    });

    it('leaves an old crash alone when the runtime answers again', async () => {
      const id = await create('old-crash');
      agent.setContainerStatus(id, { state: EXITED, exitCode: 1, finishedAtMs: Date.now(), sshReady: false });
      await waitFor('error', async () => (await env(id)).status === 'error');
      // The error is older than the outage by more than the lead.
      await controller.database.db.updateTable('environments').set({ updated_at: sql`now() - interval '10 minutes'` }).where('id', '=', id).execute();
      await agent.report({ runtimeError: DOWN });
      const applies = agent.calls.apply;
      await agent.report();
      await agent.report();
      await controller.services.reconciler.runOnce();
      expect(await row(id)).toMatchObject({ status: 'error', status_reason: 'container exited with code 1' });
      expect(agent.calls.apply).toBe(applies);
    });
  });
});
