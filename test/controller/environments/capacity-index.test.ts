import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CapacityIndex } from '../../../controller/environments/capacity-index.js';
import { snapshotForScheduling } from '../../../controller/hosts/scheduling-snapshot.js';
import { createTestDatabase, DB_TARGETS, type TestDatabase } from '../../helpers/databases.js';
import { seedHost } from '../../helpers/hosts.js';

// Issue 12, item 2: the capacity index ranks on the best-fitting hosts it holds in memory, counts
// placements in flight as taken, and a full read never overwrites an entry a placement updated
// after that read started.

const oneGpu = { cpuCores: 1, memoryBytes: 2 ** 30, gpuCount: 1, storageBytes: 2 ** 30 };

describe.each(DB_TARGETS)('capacity index on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('ranking, claims, refreshes', () => {
    let t: TestDatabase;
    beforeAll(async () => {
      t = await createTestDatabase(target);
      await seedHost(t.db, 'host-a', { gpus: 2 });
      await seedHost(t.db, 'host-b', { gpus: 8 });
    });
    afterAll(async () => t?.close());

    it('ranks best fit on its first read, then without reading again', async () => {
      const index = new CapacityIndex(t.db, 60_000);
      const first = await index.rank(oneGpu);
      expect(first.ok && first.candidates.map((c) => c.hostId)).toEqual(['host-a', 'host-b']);
      // A host added after the read is unknown until a refresh (a miss would read afresh).
      await seedHost(t.db, 'host-c', { gpus: 1 });
      const stale = await index.rank(oneGpu);
      expect(stale.ok && stale.candidates.map((c) => c.hostId)).toEqual(['host-a', 'host-b']);
      await index.refresh();
      const fresh = await index.rank(oneGpu);
      expect(fresh.ok && fresh.candidates.map((c) => c.hostId)).toEqual(['host-c', 'host-a', 'host-b']);
    });

    it('counts a claim as taken while it lasts, and not in fits()', async () => {
      const index = new CapacityIndex(t.db, 60_000);
      await index.refresh();
      const release = index.claim('host-c', oneGpu, ['GPU-host-c-0']);
      const ranked = await index.rank(oneGpu);
      expect(ranked.ok && ranked.candidates.map((c) => c.hostId)).toEqual(['host-a', 'host-b']);
      expect(index.fits('host-c', oneGpu)).toBe(true);
      release();
      const after = await index.rank(oneGpu);
      expect(after.ok && after.candidates[0]!.hostId).toBe('host-c');
    });

    it('a full read that started before an update keeps the updated entry', async () => {
      let clock = 1_000;
      const index = new CapacityIndex(t.db, 60_000, () => clock);
      const read = await snapshotForScheduling(t.db);
      index.replaceAll(read, 1_000);
      clock = 2_000;
      const full = { ...read.find((h) => h.id === 'host-c')!, gpus: read.find((h) => h.id === 'host-c')!.gpus.map((g) => ({ ...g, allocated: true })) };
      index.update('host-c', full);
      index.replaceAll(read, 1_500);
      expect(index.fits('host-c', oneGpu)).toBe(false);
      index.replaceAll(read, 2_500);
      expect(index.fits('host-c', oneGpu)).toBe(true);
      index.update('host-c', undefined);
      expect(index.get('host-c')).toBeUndefined();
      expect(index.all().map((h) => h.id).sort()).toEqual(['host-a', 'host-b']);
    });
  });
});
