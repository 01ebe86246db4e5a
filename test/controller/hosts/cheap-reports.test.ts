import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type KyselyPlugin, type PluginTransformQueryArgs, type PluginTransformResultArgs, type QueryResult, type RootOperationNode, type UnknownRow } from 'kysely';
import { GpuHealth, ObservedState } from '../../../gen/remotegpu/v1/types.js';
import { createLogger } from '../../../common/logger.js';
import { hostFactsFromProto, observedFromProto } from '../../../controller/hosts/convert.js';
import { HostRegistry } from '../../../controller/hosts/registry.js';
import { EnvironmentObserver } from '../../../controller/environments/observer.js';
import { WakeSignal } from '../../../controller/environments/wake.js';
import type { Db } from '../../../controller/db/database.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { startTestAgent, type TestAgent } from '../../helpers/test-agent.js';
import { startHostsFixture, type HostsFixture } from './fixture.js';
import { placeEnvironment } from './seed.js';

// Cheap reports (issue 12): a report that changes nothing is one statement and writes only the
// host's liveness and sequence; what did change (GPU health, a GPU gone, facts, busy ports, usage
// figures once old enough) is still written. Statements are counted with a Kysely plugin (every
// query that returns a result; a transaction's BEGIN/COMMIT come on top).

class QueryCounter implements KyselyPlugin {
  count = 0;
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    this.count++;
    return args.result;
  }
}

const logger = createLogger({ name: 'test', level: 'silent' });

describe.each(DB_TARGETS)('cheap reports on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('report path', () => {
    let f: HostsFixture;
    let db: Db;
    const counter = new QueryCounter();
    let registry: HostRegistry;
    const agents: TestAgent[] = [];

    beforeAll(async () => {
      f = await startHostsFixture(target);
      db = f.db.withPlugin(counter);
      // The real observer, on the counting handle: the whole report path is counted.
      const observer = new EnvironmentObserver({ db, logger, agents: f.services.agents, wake: new WakeSignal() });
      registry = new HostRegistry({ db, logger, trust: f.services.trust, joinTokens: f.services.joinTokens, observer, telemetryRefreshMs: 60_000 });
    });
    afterAll(async () => {
      await Promise.all(agents.map((a) => a.close()));
      await f?.close();
    });

    const agent = async (gpus = 2) => {
      const a = await startTestAgent({ ...f.join, gpus });
      agents.push(a);
      return a;
    };
    /** One report of the agent's current facts and containers, straight into the registry. */
    const send = (a: TestAgent, seq: number) =>
      registry.report({
        hostId: a.hostId,
        proof: { peer: { identity: { kind: 'host', hostId: a.hostId }, cert: new X509Certificate(a.certPem) }, bearer: '' },
        seq,
        facts: hostFactsFromProto(a.facts),
        environments: [...a.containers.values()].map((c) => observedFromProto(c.status)),
        events: [],
        takenAt: new Date(),
      });
    const hostRow = (id: string) => f.db.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const gpuRows = (id: string) => f.db.selectFrom('host_gpus').selectAll().where('host_id', '=', id).orderBy('index').execute();

    /** A running environment on the agent's host that the agent reports running. */
    const runningEnvironment = async (a: TestAgent, envId: string) => {
      await placeEnvironment(f.db, envId, a.hostId, { status: 'running' });
      await f.db.updateTable('environments').set({ observed_state: 'running', observed_at: new Date(Date.now() - 60_000) }).where('id', '=', envId).execute();
      const status = { envId, state: ObservedState.OBSERVED_STATE_RUNNING, containerId: 'c', specHash: 'h', gpuUuids: [], exitCode: 0, oomKilled: false, startedAtMs: Date.now() - 120_000, finishedAtMs: 0, message: '', sshReady: true, sshHostKeys: [] };
      a.containers.set(envId, { spec: {} as never, status });
    };

    it('an unchanged report is one statement: liveness and sequence written, facts, GPUs and environments left alone', async () => {
      const a = await agent();
      await runningEnvironment(a, 'env-cheap-1');
      expect(await send(a, 1)).toEqual({ accepted: true });
      // Whatever a write would overwrite is marked: none of it may change.
      await f.db.updateTable('hosts').set({ hostname: 'marked', last_report_at: sql<Date>`now() - interval '1 hour'` }).where('id', '=', a.hostId).execute();
      await f.db.updateTable('host_gpus').set({ updated_at: new Date('2000-01-01T00:00:00Z') }).where('host_id', '=', a.hostId).execute();
      const envBefore = await f.db.selectFrom('environments').selectAll().where('id', '=', 'env-cheap-1').executeTakeFirstOrThrow();

      counter.count = 0;
      expect(await send(a, 2)).toEqual({ accepted: true });
      expect(counter.count).toBe(1);

      const host = await hostRow(a.hostId);
      expect(host).toMatchObject({ hostname: 'marked', last_seq: 2, liveness: 'online' });
      expect(host.last_report_at!.getTime()).toBeGreaterThan(Date.now() - 60_000);
      expect((await gpuRows(a.hostId)).map((g) => g.updated_at.toISOString())).toEqual(['2000-01-01T00:00:00.000Z', '2000-01-01T00:00:00.000Z']);
      expect(await f.db.selectFrom('environments').selectAll().where('id', '=', 'env-cheap-1').executeTakeFirstOrThrow()).toEqual(envBefore);
    });

    it('still writes what changed: a GPU turned unhealthy, a GPU gone, other facts, busy ports the placement marked', async () => {
      const a = await agent(3);
      await send(a, 1);
      a.facts.gpus[0]!.health = GpuHealth.GPU_HEALTH_UNHEALTHY;
      a.facts.gpus[0]!.healthReason = 'XID 79: fallen off the bus';
      await send(a, 2);
      expect((await gpuRows(a.hostId))[0]).toMatchObject({ health: 'unhealthy', health_reason: 'XID 79: fallen off the bus', present: true });

      const gone = a.facts.gpus.pop()!;
      await send(a, 3);
      expect((await gpuRows(a.hostId)).find((g) => g.uuid === gone.uuid)).toMatchObject({ present: false, health: 'unhealthy' });

      a.facts.hostname = 'renamed.example';
      a.facts.diskTotalBytes = 123 * 2 ** 30;
      await send(a, 4);
      expect(await hostRow(a.hostId)).toMatchObject({ hostname: 'renamed.example', disk_total_bytes: 123 * 2 ** 30 });

      // A port found taken is added by the placement; the agent's next report says again what is busy.
      await f.db.updateTable('hosts').set({ busy_ports: [20001] }).where('id', '=', a.hostId).execute();
      await send(a, 5);
      expect((await hostRow(a.hostId)).busy_ports).toEqual([...a.facts.busyPorts]);
    });

    it('usage figures are written when they changed and the stored ones are older than the refresh period', async () => {
      const a = await agent(1);
      await send(a, 1);
      a.facts.gpus[0]!.utilizationPercent = 77;
      a.facts.diskFreeBytes = 5 * 2 ** 30;
      counter.count = 0;
      await send(a, 2);
      expect(counter.count).toBe(1);
      expect((await gpuRows(a.hostId))[0]!.utilization_percent).toBe(0);

      await f.db.updateTable('hosts').set({ telemetry_at: sql<Date>`now() - interval '2 minutes'` }).where('id', '=', a.hostId).execute();
      await send(a, 3);
      expect((await gpuRows(a.hostId))[0]!.utilization_percent).toBe(77);
      expect((await hostRow(a.hostId)).disk_free_bytes).toBe(5 * 2 ** 30);
      counter.count = 0;
      await send(a, 4);
      expect(counter.count).toBe(1);
    });

    it('a stale sequence changes nothing, and the observer is not told', async () => {
      const a = await agent(1);
      await send(a, 5);
      a.facts.hostname = 'late.example';
      expect(await send(a, 4)).toEqual({ accepted: false });
      expect((await hostRow(a.hostId)).hostname).not.toBe('late.example');
    });
  });
});
