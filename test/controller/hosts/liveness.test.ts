import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { sql } from 'kysely';
import { DB_TARGETS } from '../../helpers/databases.js';
import { startTestAgent, type TestAgent } from '../../helpers/test-agent.js';
import { HostLivenessLoop, LIVENESS_LOCK_KEY } from '../../../controller/hosts/liveness.js';
import { createLogger } from '../../../common/logger.js';
import { startHostsFixture, type HostsFixture } from './fixture.js';

// Host liveness: silent hosts go offline once, reporting hosts come back. The clock is faked by
// moving last_report_at into the past instead of waiting for the timeout.

describe.each(DB_TARGETS)('host liveness on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('liveness loop', () => {
    let f: HostsFixture;
    const agents: TestAgent[] = [];

    beforeAll(async () => {
      f = await startHostsFixture(target, { REMOTEGPU_HOST_TIMEOUT_MS: '60000' });
    });
    afterEach(async () => {
      await f.services.hostLiveness.stop();
      await Promise.all(agents.splice(0).map((a) => a.close()));
    });
    afterAll(async () => {
      await f?.close();
    });

    const silence = (hostId: string) =>
      f.db
        .updateTable('hosts')
        .set({ last_report_at: sql<Date>`now() - interval '10 minutes'` })
        .where('id', '=', hostId)
        .execute();
    const liveness = async (hostId: string) =>
      (await f.db.selectFrom('hosts').select('liveness').where('id', '=', hostId).executeTakeFirstOrThrow()).liveness;

    it('the running loop flips a silent host offline and tells the observer once; a report brings it back', async () => {
      const quiet = await startTestAgent({ ...f.join, gpus: 1 });
      const chatty = await startTestAgent({ ...f.join, gpus: 1 });
      agents.push(quiet, chatty);
      await silence(quiet.hostId);

      // A fast loop over the same services (the configured one runs every 20 s).
      const loop = new HostLivenessLoop({
        db: f.db,
        logger: createLogger({ name: 'test', level: 'silent' }),
        hostTimeoutMs: 60_000,
        intervalMs: 20,
        observer: f.services.hostObserver,
      });
      loop.start();
      try {
        await vi.waitFor(async () => expect(await liveness(quiet.hostId)).toBe('offline'), { timeout: 10_000, interval: 20 });
        // Let several more passes run: the host must be reported offline only once.
        const passes = await Promise.all([loop.runOnce(), loop.runOnce()]);
        expect(passes.flatMap((p) => p.offline)).toEqual([]);
      } finally {
        await loop.stop();
      }
      expect(f.observer.offline.filter((id) => id === quiet.hostId)).toEqual([quiet.hostId]);
      expect(f.observer.offline).not.toContain(chatty.hostId);
      expect(await liveness(chatty.hostId)).toBe('online');

      await quiet.report();
      expect(await liveness(quiet.hostId)).toBe('online');
    });

    it('the configured loop in ControllerServices runs too', async () => {
      const a = await startTestAgent({ ...f.join });
      agents.push(a);
      await silence(a.hostId);
      const pass = await f.services.hostLiveness.runOnce();
      expect(pass).toMatchObject({ skipped: false, offline: [a.hostId] });
      expect(await liveness(a.hostId)).toBe('offline');
      expect(f.observer.offline).toContain(a.hostId);
    });

    it('a host that registered but never reported goes offline after the timeout too', async () => {
      const a = await startTestAgent({ ...f.join });
      agents.push(a);
      await f.db
        .updateTable('hosts')
        .set({ last_report_at: null, registered_at: sql<Date>`now() - interval '10 minutes'` })
        .where('id', '=', a.hostId)
        .execute();
      const pass = await f.services.hostLiveness.runOnce();
      expect(pass.offline).toContain(a.hostId);
    });

    it('end to end with a 1 s timeout: the agent that stops reporting goes offline, and back online when it reports again', async () => {
      const g = await startHostsFixture(target, { REMOTEGPU_HOST_TIMEOUT_MS: '1000' });
      const silent = await startTestAgent({ ...g.join, gpus: 1 });
      const steady = await startTestAgent({ ...g.join, gpus: 1 });
      const state = async (hostId: string) =>
        (await g.db.selectFrom('hosts').select('liveness').where('id', '=', hostId).executeTakeFirstOrThrow()).liveness;
      try {
        steady.startReporting(50);
        silent.startReporting(50);
        g.services.hostLiveness.start();
        silent.stopReporting();
        await vi.waitFor(async () => expect(await state(silent.hostId)).toBe('offline'), { timeout: 15_000, interval: 50 });
        expect(g.observer.offline).toEqual([silent.hostId]);
        expect(await state(steady.hostId)).toBe('online');
        silent.startReporting(50);
        await vi.waitFor(async () => expect(await state(silent.hostId)).toBe('online'), { timeout: 15_000, interval: 50 });
      } finally {
        await Promise.all([silent.close(), steady.close()]);
        await g.close();
      }
    });

    it('declares a host offline within the timeout after its last report, not up to one interval later', async () => {
      // The loop runs every timeout/3. The host reports just after a pass, so that its deadline
      // falls just after one too: a loop that only woke every interval found it a whole interval
      // late (the 35-39 s of a 30 s timeout); the loop times its next pass for the deadline.
      const timeoutMs = 3_000;
      const intervalMs = timeoutMs / 3;
      const g = await startHostsFixture(target, { REMOTEGPU_HOST_TIMEOUT_MS: String(timeoutMs) });
      const a = await startTestAgent({ ...g.join, gpus: 1 });
      const offlineAt = new Map<string, number>();
      const loop = new HostLivenessLoop({
        db: g.db,
        logger: createLogger({ name: 'test', level: 'silent' }),
        hostTimeoutMs: timeoutMs,
        observer: { onReport: async () => {}, onHostOffline: async (id) => void offlineAt.set(id, Date.now()) },
      });
      try {
        loop.start();
        await new Promise((r) => setTimeout(r, 100));
        const reportedFrom = Date.now();
        await a.report();
        await vi.waitFor(() => expect(offlineAt.has(a.hostId)).toBe(true), { timeout: 15_000, interval: 20 });
        const silentFor = offlineAt.get(a.hostId)! - reportedFrom;
        console.log(`host offline ${silentFor} ms after its last report (timeout ${timeoutMs} ms, loop interval ${intervalMs} ms)`);
        // Never before the timeout; at most a small part of an interval after it.
        expect(silentFor).toBeGreaterThanOrEqual(timeoutMs);
        expect(silentFor).toBeLessThanOrEqual(timeoutMs + intervalMs / 2);
      } finally {
        await loop.stop();
        await a.close();
        await g.close();
      }
    });

    // Only a server has a second session to hold the lock from; PGlite serves one process.
    if (target.name === 'postgres') it('skips the pass while another replica holds the advisory lock', async () => {
      const a = await startTestAgent({ ...f.join });
      agents.push(a);
      await silence(a.hostId);
      const other = new pg.Client({ connectionString: f.database.url });
      await other.connect();
      try {
        await other.query('begin');
        await other.query('select pg_advisory_xact_lock($1::bigint)', [LIVENESS_LOCK_KEY]);
        expect(await f.services.hostLiveness.runOnce()).toEqual({ skipped: true, offline: [] });
        expect(await liveness(a.hostId)).toBe('online');
        await other.query('commit');
      } finally {
        await other.end();
      }
      expect((await f.services.hostLiveness.runOnce()).offline).toEqual([a.hostId]);
    });
  });
});
