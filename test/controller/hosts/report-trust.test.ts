import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status, type ServiceError } from '@grpc/grpc-js';
import { sql } from 'kysely';
import { createLogger } from '../../../common/logger.js';
import { HostCredentials, type HostProof } from '../../../controller/hosts/host-auth.js';
import { EnvironmentObserver } from '../../../controller/environments/observer.js';
import { WakeSignal } from '../../../controller/environments/wake.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { startTestAgent, type TestAgent } from '../../helpers/test-agent.js';
import { startHostsFixture, type HostsFixture } from './fixture.js';
import { insertHost, placeEnvironment } from './seed.js';

// Issue 12: who a reporting host is, cached in memory and forgotten on revocation; and a report
// judged by when the agent took it, so a late one never overrides what the controller observed
// after it (an ApplyEnvironment outcome).

const logger = createLogger({ name: 'test', level: 'silent' });
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: ServiceError) => e);
const proofOf = (a: TestAgent): HostProof => ({ peer: { identity: { kind: 'host', hostId: a.hostId }, cert: new X509Certificate(a.certPem) }, bearer: '' });

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

    it('a revocation drops the cached credential at once: the next report is refused', async () => {
      const a = await agent();
      await a.report();
      expect(f.services.registry.credentials.isCached(a.hostId)).toBe(true);
      await f.services.hosts.revoke(a.hostId);
      expect(f.services.registry.credentials.isCached(a.hostId)).toBe(false);
      const err = await failure(a.report());
      expect(err?.code).toBe(status.UNAUTHENTICATED);
    });

    it('removing a host drops its cached credential: the next report gets NOT_FOUND', async () => {
      const a = await agent();
      await a.report();
      expect(f.services.registry.credentials.isCached(a.hostId)).toBe(true);
      await f.services.hosts.remove(a.hostId);
      expect((await failure(a.report()))?.code).toBe(status.NOT_FOUND);
    });

    it('another replica revoking: the cache holds at most its max age; forget or an uncached check refuses', async () => {
      const a = await agent();
      const cached = new HostCredentials(f.db, f.services.trust, 5_000);
      const uncached = new HostCredentials(f.db, f.services.trust, 0);
      await cached.authenticate(a.hostId, proofOf(a));
      expect(cached.isCached(a.hostId)).toBe(true);
      expect(uncached.isCached(a.hostId)).toBe(false);
      // What another replica's revocation does to the shared database.
      await f.db.deleteFrom('host_certificates').where('host_id', '=', a.hostId).execute();
      await expect(uncached.authenticate(a.hostId, proofOf(a))).rejects.toMatchObject({ code: 'unauthenticated' });
      // Within the max age this replica still accepts it (documented: at most 5 s).
      await expect(cached.authenticate(a.hostId, proofOf(a))).resolves.toBeUndefined();
      cached.forget(a.hostId);
      await expect(cached.authenticate(a.hostId, proofOf(a))).rejects.toMatchObject({ code: 'unauthenticated' });
      // Refusals are not cached either.
      expect(cached.isCached(a.hostId)).toBe(false);
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
