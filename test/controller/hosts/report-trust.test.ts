import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status, type ServiceError } from '@grpc/grpc-js';
import { sql } from 'kysely';
import { createLogger } from '../../../common/logger.js';
import { EnvironmentObserver } from '../../../controller/environments/observer.js';
import { WakeSignal } from '../../../controller/environments/wake.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { startTestAgent, type TestAgent } from '../../helpers/test-agent.js';
import { startHostsFixture, type HostsFixture } from './fixture.js';
import { insertHost, placeEnvironment } from './seed.js';

// Issue 12: the report's one statement checks the host's certificate, so a revocation (on any
// replica) refuses the next report at once and the refused report changes nothing; and a report
// judged by when the agent took it, so a late one never overrides what the controller observed
// after it (an ApplyEnvironment outcome).

const logger = createLogger({ name: 'test', level: 'silent' });
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: ServiceError) => e);

describe.each(DB_TARGETS)('report trust and staleness on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('credentials and report time', () => {
    let f: HostsFixture;
    const agents: TestAgent[] = [];
    const agent = async () => {
      const a = await startTestAgent({ ...f.join, gpus: 1 });
      agents.push(a);
      return a;
    };

    beforeAll(async () => {
      f = await startHostsFixture(target);
    });
    afterAll(async () => {
      await Promise.all(agents.map((a) => a.close()));
      await f?.close();
    });

    it('a revocation refuses the next report at once, and the refused report changes nothing', async () => {
      const a = await agent();
      await a.report();
      await f.services.hosts.revoke(a.hostId);
      const err = await failure(a.report());
      expect(err?.code).toBe(status.UNAUTHENTICATED);
      // The revocation moved the last report to the epoch (offline at the next liveness pass): still there.
      const host = await f.db.selectFrom('hosts').select(['last_report_at', 'last_seq']).where('id', '=', a.hostId).executeTakeFirstOrThrow();
      expect(host).toEqual({ last_report_at: new Date(0), last_seq: 1 });
    });

    it('removing a host: the next report gets NOT_FOUND', async () => {
      const a = await agent();
      await a.report();
      await f.services.hosts.remove(a.hostId);
      expect((await failure(a.report()))?.code).toBe(status.NOT_FOUND);
    });

    it('another replica revoking (the certificates gone from the shared database): this one refuses the next report at once', async () => {
      const a = await agent();
      await a.report();
      await f.db.deleteFrom('host_certificates').where('host_id', '=', a.hostId).execute();
      expect((await failure(a.report()))?.code).toBe(status.UNAUTHENTICATED);
      expect((await f.db.selectFrom('hosts').select('last_seq').where('id', '=', a.hostId).executeTakeFirstOrThrow()).last_seq).toBe(1);
    });

    it('an expired certificate is refused, a stale sequence with a good one is accepted as a no-op', async () => {
      const a = await agent();
      await a.report({ seq: 5 });
      expect(await a.report({ seq: 3 })).toBeDefined();
      await f.db.updateTable('host_certificates').set({ not_after: new Date(Date.now() - 1000) }).where('host_id', '=', a.hostId).execute();
      expect((await failure(a.report({ seq: 6 })))?.code).toBe(status.UNAUTHENTICATED);
      expect((await f.db.selectFrom('hosts').select('last_seq').where('id', '=', a.hostId).executeTakeFirstOrThrow()).last_seq).toBe(5);
    });

    it('a report carries its age: the observer gets when it was taken and the environments read with it', async () => {
      const a = await agent();
      await placeEnvironment(f.db, 'env-age-1', a.hostId, { status: 'running' });
      f.observer.reports.length = 0;
      await a.report({ ageMs: 30_000 });
      await a.report();
      const [aged, plain] = f.observer.reports;
      expect(aged!.context?.takenAt?.getTime()).toBeLessThan(Date.now() - 29_000);
      expect(aged!.context?.known?.map((e) => e.id)).toEqual(['env-age-1']);
      expect(plain!.context?.takenAt).toBeUndefined();
    });

    describe('a report taken before the controller observed the container itself', () => {
      const observer = () => new EnvironmentObserver({ db: f.db, logger, agents: f.services.agents, wake: new WakeSignal() });
      const row = (id: string) => f.db.selectFrom('environments').select(['status', 'spec_generation', 'observed_state']).where('id', '=', id).executeTakeFirstOrThrow();
      /** A running environment whose ApplyEnvironment outcome was recorded 10 s ago. */
      const appliedTenSecondsAgo = async (hostId: string, envId: string) => {
        await placeEnvironment(f.db, envId, hostId, { status: 'running' });
        await f.db.updateTable('environments').set({ observed_state: 'running', observed_at: new Date(Date.now() - 10_000), applied_generation: sql<number>`spec_generation` }).where('id', '=', envId).execute();
      };

      it('does not override it however late it arrives (no false "container missing → recreating")', async () => {
        await insertHost(f.db, 'host-stale-1');
        await appliedTenSecondsAgo('host-stale-1', 'env-stale-1');
        // Taken 20 s ago (before the outcome), showing no container yet.
        await observer().onReport('host-stale-1', [], [], { takenAt: new Date(Date.now() - 20_000) });
        expect(await row('env-stale-1')).toEqual({ status: 'running', spec_generation: 1, observed_state: 'running' });
        // A report taken now that shows it missing is believed.
        await observer().onReport('host-stale-1', [], [], { takenAt: new Date() });
        expect(await row('env-stale-1')).toMatchObject({ status: 'starting', spec_generation: 2, observed_state: 'absent' });
      });

      it('from an agent that does not say when it took it: today\'s rule (the observation outranks reports for 5 s only)', async () => {
        await insertHost(f.db, 'host-stale-2');
        await appliedTenSecondsAgo('host-stale-2', 'env-stale-2');
        await observer().onReport('host-stale-2', [], []);
        expect(await row('env-stale-2')).toMatchObject({ status: 'starting', spec_generation: 2 });
      });
    });
  });
});
