import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshotForScheduling } from '../../../controller/hosts/hosts.service.js';
import { schedule } from '../../../controller/scheduler/index.js';
import { DB_TARGETS, createTestDatabase, type TestDatabase } from '../../helpers/databases.js';
import { gpus, insertHost, placeEnvironment } from './seed.js';

const GIB = 2 ** 30;

describe.each(DB_TARGETS)('snapshotForScheduling on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('host snapshots', () => {
    let t: TestDatabase;
    let aGpus: string[];

    beforeAll(async () => {
      t = await createTestDatabase(target);
      aGpus = await insertHost(t.db, 'host-a', { cpuCores: 32, memoryBytes: 256 * GIB, diskBytes: 1000 * GIB, gpus: [...gpus(3), { health: 'unhealthy' }, { present: false }] });
      await insertHost(t.db, 'host-b', { adminState: 'cordoned', gpus: gpus(2, 'NVIDIA A40') });
      await insertHost(t.db, 'host-c', { liveness: 'offline', adminState: 'draining' });
      await placeEnvironment(t.db, 'env-1', 'host-a', { cpu: 8, memoryBytes: 64 * GIB, storageBytes: 100 * GIB, gpuUuids: [aGpus[0]!] });
      await placeEnvironment(t.db, 'env-2', 'host-a', { cpu: 4, memoryBytes: 32 * GIB, storageBytes: 50 * GIB, desired: 'stopped' });
    });
    afterAll(async () => {
      await t?.close();
    });

    it('returns totals, reservations, status and GPUs with health and allocation per host', async () => {
      const snaps = await snapshotForScheduling(t.db);
      expect(snaps.map((s) => [s.id, s.status])).toEqual([
        ['host-a', 'online'],
        ['host-b', 'cordoned'],
        ['host-c', 'offline'],
      ]);
      const a = snaps[0]!;
      expect(a).toMatchObject({
        cpuCores: 32,
        memoryBytes: 256 * GIB,
        storageBytes: 1000 * GIB,
        allocatedCpuCores: 8,
        allocatedMemoryBytes: 64 * GIB,
        allocatedStorageBytes: 150 * GIB,
      });
      expect(a.gpus.map((g) => [g.index, g.healthy, g.allocated])).toEqual([
        [0, true, true],
        [1, true, false],
        [2, true, false],
        [3, false, false],
        [4, false, false],
      ]);
      expect(snaps[1]!.gpus.map((g) => g.model)).toEqual(['NVIDIA A40', 'NVIDIA A40']);
      expect(snaps[2]!.gpus).toEqual([]);
    });

    it("counts the data disk minus the agent's reserve as storage, and passes disk pressure on: no new environment there", async () => {
      await insertHost(t.db, 'host-d', { diskBytes: 1000 * GIB });
      await placeEnvironment(t.db, 'env-d1', 'host-d', { cpu: 1, memoryBytes: GIB, storageBytes: 800 * GIB });
      await t.db.updateTable('hosts').set({ disk_reserve_bytes: 100 * GIB }).where('id', '=', 'host-d').execute();
      let [d] = await snapshotForScheduling(t.db, { hostIds: ['host-d'] });
      expect(d).toMatchObject({ storageBytes: 900 * GIB, allocatedStorageBytes: 800 * GIB, diskPressure: false });
      const want = (storageBytes: number) => schedule({ cpuCores: 1, memoryBytes: GIB, gpuCount: 0, storageBytes }, [d!]);
      expect(want(100 * GIB).ok).toBe(true);
      expect(want(101 * GIB).ok === false && want(101 * GIB).rejections[0]!.reason).toBe('insufficient_storage');

      await t.db.updateTable('hosts').set({ disk_pressure: true }).where('id', '=', 'host-d').execute();
      [d] = await snapshotForScheduling(t.db, { hostIds: ['host-d'] });
      expect(d!.diskPressure).toBe(true);
      expect(want(GIB).rejections[0]?.reason).toBe('disk_pressure');
      expect(want(0).ok).toBe(true); // a start of an environment already there
    });

    it('restricts to the given hosts', async () => {
      expect((await snapshotForScheduling(t.db, { hostIds: ['host-b'] })).map((s) => s.id)).toEqual(['host-b']);
      expect(await snapshotForScheduling(t.db, { hostIds: [] })).toEqual([]);
    });

    it('feeds the scheduler: only free, healthy GPUs of schedulable hosts are offered', async () => {
      const snaps = await snapshotForScheduling(t.db);
      const fits = schedule({ cpuCores: 4, memoryBytes: 8 * GIB, gpuCount: 2, storageBytes: 10 * GIB }, snaps);
      expect(fits.ok).toBe(true);
      if (fits.ok) expect(fits.candidates.map((c) => [c.hostId, [...c.gpuUuids].sort()])).toEqual([['host-a', [aGpus[1], aGpus[2]].sort()]]);
      const tooMany = schedule({ cpuCores: 1, memoryBytes: GIB, gpuCount: 3, storageBytes: GIB }, snaps);
      expect(tooMany.ok).toBe(false);
    });
  });
});
