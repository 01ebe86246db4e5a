import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sql } from 'kysely';
import { createLogger } from '../../../common/logger.js';
import { HostLivenessLoop } from '../../../controller/hosts/liveness.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { startHostsFixture, type HostsFixture } from './fixture.js';
import { insertHost } from './seed.js';

// Issue 12: after a controller (re)start no host goes offline before it had a full host timeout to
// report: its agents were backing off while the controller was away, and the rows say they were
// last heard from before the restart.

describe.each(DB_TARGETS)('liveness grace after start on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('grace', () => {
    let f: HostsFixture;

    beforeAll(async () => {
      // Generous timeouts: what is asserted is the grace, and a loaded CI machine can take seconds
      // between the loop's first pass and the test's own pass.
      f = await startHostsFixture(target, { REMOTEGPU_HOST_TIMEOUT_MS: '15000' });
    });
    afterAll(async () => {
      await f?.close();
    });

    const silentSince = (id: string, ago: string) =>
      f.db.updateTable('hosts').set({ last_report_at: sql<Date>`now() - ${ago}::interval` }).where('id', '=', id).execute();
    const liveness = async (id: string) => (await f.db.selectFrom('hosts').select('liveness').where('id', '=', id).executeTakeFirstOrThrow()).liveness;

    it('the controller\'s loop counts silence from its first pass: a host silent since before the start stays online for one timeout, then goes offline', async () => {
      await insertHost(f.db, 'host-grace-1');
      await silentSince('host-grace-1', '10 minutes');
      const loop = new HostLivenessLoop({
        db: f.db,
        logger: createLogger({ name: 'test', level: 'silent' }),
        hostTimeoutMs: 10_000,
        intervalMs: 20,
        observer: f.observer,
        graceAfterStart: true,
      });
      loop.start();
      try {
        await vi.waitFor(() => expect(loop.countingSince).toBeInstanceOf(Date), { timeout: 10_000, interval: 10 });
        // The first passes after the start flip nothing, although the host has been silent for 10 minutes.
        const pass = await loop.runOnce();
        expect(pass.offline).toEqual([]);
        expect(await liveness('host-grace-1')).toBe('online');
        expect(pass.nextSilenceMs).toBeGreaterThan(0);
        // One timeout after the first pass it is offline (told once).
        await vi.waitFor(async () => expect(await liveness('host-grace-1')).toBe('offline'), { timeout: 45_000, interval: 100 });
        expect(f.observer.offline.filter((id) => id === 'host-grace-1')).toEqual(['host-grace-1']);
      } finally {
        await loop.stop();
      }
    });

    it('ControllerServices configures the grace on its loop', async () => {
      await insertHost(f.db, 'host-grace-2');
      await silentSince('host-grace-2', '10 minutes');
      f.services.hostLiveness.start();
      try {
        // Its first pass comes one interval (a third of the timeout) after the start.
        await vi.waitFor(() => expect(f.services.hostLiveness.countingSince).toBeInstanceOf(Date), { timeout: 20_000, interval: 10 });
        expect((await f.services.hostLiveness.runOnce()).offline).not.toContain('host-grace-2');
        expect(await liveness('host-grace-2')).toBe('online');
      } finally {
        await f.services.hostLiveness.stop();
      }
    });

    it('without the grace (a loop run by hand, as before) a host silent past the timeout goes offline on the first pass', async () => {
      await insertHost(f.db, 'host-grace-3');
      await silentSince('host-grace-3', '10 minutes');
      const loop = new HostLivenessLoop({ db: f.db, logger: createLogger({ name: 'test', level: 'silent' }), hostTimeoutMs: 5000, observer: f.observer });
      expect((await loop.runOnce()).offline).toContain('host-grace-3');
    });
  });
});
