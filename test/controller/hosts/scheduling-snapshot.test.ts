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
