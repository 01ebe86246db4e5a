import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { status, type ServiceError } from '@grpc/grpc-js';
import { ObservedState } from '../../../gen/remotegpu/v1/types.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { startTestAgent, type TestAgent } from '../../helpers/test-agent.js';
import { GPU_NOT_REPORTED } from '../../../controller/hosts/model.js';
import { JOIN_TOKEN, startHostsFixture, type HostsFixture } from './fixture.js';
import { identityOf } from '../../../common/pki.js';

// ControlPlane over real gRPC on loopback, against both database engines.

describe.each(DB_TARGETS)('ControlPlane on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('register and report', () => {
    let f: HostsFixture;
    const agents: TestAgent[] = [];
    const agent = async (opts: Partial<Parameters<typeof startTestAgent>[0]> = {}) => {
      const a = await startTestAgent({ ...f.join, gpus: 2, ...opts });
      agents.push(a);
      return a;
    };

    beforeAll(async () => {
      f = await startHostsFixture(target);
    });
    afterEach(async () => {
      await Promise.all(agents.splice(0).map((a) => a.close()));
    });
    afterAll(async () => {
      await f?.close();
    });

    it('registers a host with the join token: new id, a certificate naming it, facts and GPUs saved', async () => {
      const a = await agent({ gpus: 4, cpuCores: 64, memoryBytes: 2 ** 40 });
      expect(a.hostId).toMatch(/^host-[a-z0-9]{10}$/);
      expect(identityOf(a.certPem)).toEqual({ kind: 'host', hostId: a.hostId });
      expect(a.credential).toBe('');
      expect(a.reportIntervalMs).toBe(1000);

      const host = await f.db.selectFrom('hosts').selectAll().where('id', '=', a.hostId).executeTakeFirstOrThrow();
      expect(host).toMatchObject({
        hostname: a.facts.hostname,
        agent_address: a.address,
        approved: true,
        join_token_id: null,
        cpu_cores: 64,
        memory_bytes: 2 ** 40,
        liveness: 'online',
        admin_state: 'active',
        driver_version: '535.104.05',
        cuda_version: '12.2',
      });
      const gpus = await f.db.selectFrom('host_gpus').selectAll().where('host_id', '=', a.hostId).orderBy('index').execute();
      expect(gpus.map((g) => g.uuid)).toEqual(a.facts.gpus.map((g) => g.uuid));
      expect(gpus.every((g) => g.present && g.health === 'healthy' && g.model === 'NVIDIA H100 80GB HBM3')).toBe(true);
    });

    it('refuses a wrong join token with UNAUTHENTICATED and a clear message, creating nothing', async () => {
      const before = await f.db.selectFrom('hosts').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      const err = await startTestAgent({ ...f.join, joinToken: 'not-the-join-token-at-all', gpus: 1 }).then(
        () => undefined,
        (e: ServiceError) => e,
      );
      expect(err?.code).toBe(status.UNAUTHENTICATED);
      expect(err?.details).toMatch(/unknown join token/);
      expect(err?.details).not.toContain(JOIN_TOKEN);
      const after = await f.db.selectFrom('hosts').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      expect(after.n).toBe(before.n);
    });

    it('a report updates GPU usage in host_gpus and passes environments and events to the observer', async () => {
      const a = await agent({ gpus: 2 });
      a.facts.gpus[0]!.utilizationPercent = 87;
      a.facts.gpus[0]!.memoryUsedBytes = 12345;
      a.facts.gpus[1]!.temperatureC = 71;
      a.containers.set('env-abc', {
        spec: {} as never,
        status: {
          envId: 'env-abc',
          state: ObservedState.OBSERVED_STATE_RUNNING,
          containerId: 'c-1',
          specHash: 'h1',
          gpuUuids: [a.facts.gpus[0]!.uuid],
          exitCode: 0,
          oomKilled: false,
          startedAtMs: 1_700_000_000_000,
          finishedAtMs: 0,
          message: '',
          sshReady: true,
          sshHostKeys: [],
        },
      });
      a.pushEvent('env-abc', 'started', 'Container started');
      f.observer.reports.length = 0;
      const res = await a.report();
      expect(res.reportIntervalMs).toBe(1000);

      const gpus = await f.db.selectFrom('host_gpus').selectAll().where('host_id', '=', a.hostId).orderBy('index').execute();
      expect(gpus[0]).toMatchObject({ utilization_percent: 87, memory_used_bytes: 12345 });
      expect(gpus[1]).toMatchObject({ temperature_c: 71 });
      const host = await f.db.selectFrom('hosts').select(['last_seq', 'last_report_at']).where('id', '=', a.hostId).executeTakeFirstOrThrow();
      expect(host.last_seq).toBe(1);
      expect(host.last_report_at).toBeInstanceOf(Date);

      expect(f.observer.reports).toHaveLength(1);
      const rep = f.observer.reports[0]!;
      expect(rep.hostId).toBe(a.hostId);
      expect(rep.environments).toEqual([
        expect.objectContaining({ envId: 'env-abc', state: 'running', sshReady: true, startedAt: new Date(1_700_000_000_000), finishedAt: null }),
      ]);
      expect(rep.events).toEqual([expect.objectContaining({ envId: 'env-abc', kind: 'started', message: 'Container started' })]);
      expect(rep.events[0]!.at).toBeInstanceOf(Date);
      expect(a.pendingEvents).toEqual([]);
    });

    it('a GPU missing from a report becomes absent and unhealthy; reported again, healthy', async () => {
      const a = await agent({ gpus: 3 });
      const gone = a.facts.gpus.pop()!;
      await a.report();
      const row = await f.db.selectFrom('host_gpus').selectAll().where('host_id', '=', a.hostId).where('uuid', '=', gone.uuid).executeTakeFirstOrThrow();
      expect(row).toMatchObject({ present: false, health: 'unhealthy', health_reason: GPU_NOT_REPORTED });
      const others = await f.db.selectFrom('host_gpus').select('health').where('host_id', '=', a.hostId).where('uuid', '<>', gone.uuid).execute();
      expect(others.map((o) => o.health)).toEqual(['healthy', 'healthy']);

      a.facts.gpus.push(gone);
      await a.report();
      const back = await f.db.selectFrom('host_gpus').selectAll().where('host_id', '=', a.hostId).where('uuid', '=', gone.uuid).executeTakeFirstOrThrow();
      expect(back).toMatchObject({ present: true, health: 'healthy', health_reason: '' });
    });

    it('a report of zero GPUs marks every GPU unhealthy and stores the GPU condition', async () => {
      const a = await agent({ gpus: 2 });
      a.facts.gpus.length = 0;
      a.facts.gpuCondition = 'NVIDIA driver not loaded';
      await a.report();
      const gpus = await f.db.selectFrom('host_gpus').select(['present', 'health']).where('host_id', '=', a.hostId).execute();
      expect(gpus).toEqual([
        { present: false, health: 'unhealthy' },
        { present: false, health: 'unhealthy' },
      ]);
      const host = await f.db.selectFrom('hosts').select('gpu_condition').where('id', '=', a.hostId).executeTakeFirstOrThrow();
      expect(host.gpu_condition).toBe('NVIDIA driver not loaded');
    });

    it('ignores stale sequence numbers and accepts seq 1 after an agent restart', async () => {
      const a = await agent({ gpus: 1 });
      a.facts.gpus[0]!.utilizationPercent = 10;
      await a.report({ seq: 5 });
      f.observer.reports.length = 0;
      a.facts.gpus[0]!.utilizationPercent = 99;
      await a.report({ seq: 4 }); // late duplicate: answered OK, changes nothing
      await a.report({ seq: 5 });
      let gpu = await f.db.selectFrom('host_gpus').select('utilization_percent').where('host_id', '=', a.hostId).executeTakeFirstOrThrow();
      expect(gpu.utilization_percent).toBe(10);
      expect(f.observer.reports).toHaveLength(0);

      await a.report({ seq: 1 }); // the agent restarted without re-registering
      gpu = await f.db.selectFrom('host_gpus').select('utilization_percent').where('host_id', '=', a.hostId).executeTakeFirstOrThrow();
      expect(gpu.utilization_percent).toBe(99);
      expect(f.observer.reports).toHaveLength(1);
      const host = await f.db.selectFrom('hosts').select('last_seq').where('id', '=', a.hostId).executeTakeFirstOrThrow();
      expect(host.last_seq).toBe(1);
    });

    it('a report without facts only records liveness', async () => {
      const a = await agent({ gpus: 1 });
      await f.db.updateTable('hosts').set({ liveness: 'offline' }).where('id', '=', a.hostId).execute();
      await a.report({ withoutFacts: true });
      const host = await f.db.selectFrom('hosts').select(['liveness', 'hostname']).where('id', '=', a.hostId).executeTakeFirstOrThrow();
      expect(host).toEqual({ liveness: 'online', hostname: a.facts.hostname });
      const gpus = await f.db.selectFrom('host_gpus').select('present').where('host_id', '=', a.hostId).execute();
      expect(gpus).toEqual([{ present: true }]);
    });

    it('an observer failure fails the report, so the agent keeps its events and sends them again', async () => {
      const a = await agent();
      a.pushEvent('env-x', 'exited', 'Container exited with code 1');
      f.observer.failReports = true;
      try {
        const err = await a.report().then(
          () => undefined,
          (e: ServiceError) => e,
        );
        expect(err?.code).toBe(status.INTERNAL);
        expect(a.pendingEvents).toHaveLength(1);
      } finally {
        f.observer.failReports = false;
      }
      f.observer.reports.length = 0;
      await a.report();
      expect(f.observer.reports[0]?.events.map((e) => e.kind)).toEqual(['exited']);
    });
  });
});
