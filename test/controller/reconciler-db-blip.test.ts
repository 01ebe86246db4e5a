import { afterEach, describe, expect, it } from 'vitest';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { createLogger } from '../../common/logger.js';
import { WakeSignal } from '../../controller/environments/wake.js';
import type { QueuePlacer } from '../../controller/environments/queue.js';
import type { AgentApi, AgentPool, ObservedEnvironment } from '../../controller/hosts/types.js';
import { Reconciler } from '../../controller/reconciler/reconciler.js';
import { DB_TARGETS, createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { insertHost, placeEnvironment } from './hosts/seed.js';

// A database blip between an agent's answer and the record of it (found by a review): the agent
// started the container, the write of `running` failed because the connection was lost, and the
// reconciler took that failure for the agent's refusal: once the database answered again it wrote
// status `error` with the database's message as the reason, for a container that runs, and
// nothing ever brought it back (the observer only clears errors of exited containers).

const logger = createLogger({ name: 'reconciler-db-blip', level: 'silent' });
const noQueue = { placeQueued: async () => {}, movePort: async () => false } as unknown as QueuePlacer;

/** Fails the next UPDATE of `environments` as a connection the server terminated does (pg's own message). */
class DropNextEnvironmentUpdate implements KyselyPlugin {
  armed = false;
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const node = args.node as RootOperationNode & { table?: { table?: { identifier?: { name?: string } } } };
    if (this.armed && node.kind === 'UpdateQueryNode' && node.table?.table?.identifier?.name === 'environments') {
      this.armed = false;
      throw new Error('Connection terminated unexpectedly');
    }
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

function running(envId: string): ObservedEnvironment {
  return { envId, state: 'running', containerId: 'c1', specHash: 'h', gpuUuids: [], exitCode: 0, oomKilled: false, startedAt: new Date(), finishedAt: null, message: '', sshReady: false, storageUsedBytes: null, rootfsUsedBytes: null, stopReason: '', sshHostKeys: [] };
}

describe.each(DB_TARGETS)('reconciler and a database blip on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('passes', () => {
    let t: TestDatabase | undefined;
    let reconciler: Reconciler | undefined;
    afterEach(async () => {
      await reconciler?.stop();
      await t?.close();
    });

    it('a lost connection while recording a started container does not put the environment in error; the next pass records running', async () => {
      t = await createTestDatabase(target);
      await insertHost(t.db, 'host-a');
      await placeEnvironment(t.db, 'env-blip', 'host-a', { status: 'starting' });
      await t.db.updateTable('environments').set({ ssh_port: 20001 }).where('id', '=', 'env-blip').execute();
      const blip = new DropNextEnvironmentUpdate();
      let applies = 0;
      const agent = {
        apply: async (spec: { envId: string }) => {
          applies++;
          blip.armed = applies === 1; // the record of the first apply is lost
          return { status: running(spec.envId), action: applies === 1 ? 'created' : 'none' };
        },
      } as unknown as AgentApi;
      const agents = { forHost: async () => agent, close: () => {} } as AgentPool;
      reconciler = new Reconciler({ db: t.db.withPlugin(blip), dbKind: target.name, agents, queue: noQueue, wake: new WakeSignal(), logger, intervalMs: 60_000 });

      await reconciler.runOnce().catch(() => {});
      const after = await t.db.selectFrom('environments').select(['status', 'status_reason']).where('id', '=', 'env-blip').executeTakeFirstOrThrow();
      expect(after.status).not.toBe('error');

      await reconciler.runOnce();
      const settled = await t.db.selectFrom('environments').select(['status', 'status_reason', 'applied_generation', 'spec_generation']).where('id', '=', 'env-blip').executeTakeFirstOrThrow();
      expect(applies).toBe(2);
      expect(settled.status).toBe('running');
      expect(settled.status_reason).toBe('');
      expect(settled.applied_generation).toBe(settled.spec_generation);
    });
  });
});
