import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseAll } from '../../../controller/environments/placement.js';
import { lockPortSpace, movePortOff, pickPort, reservePorts, type PortRanges } from '../../../controller/environments/port-space.js';
import { createTestDatabase, DB_TARGETS, type TestDatabase } from '../../helpers/databases.js';
import { insertHost, placeEnvironment } from '../hosts/seed.js';

// Port reuse (issue 14 item 1): a new environment gets a port never used before, else the free one
// given back longest ago, so a deleted environment's SSH address (and the host key ssh clients
// remember for it) does not go straight to the next environment while the range has others.

describe('pickPort', () => {
  const range = { from: 100, to: 104 };

  it('takes the lowest free port never released', () => {
    expect(pickPort(range, new Set([100]), new Map([[101, 5]]))).toBe(102);
    expect(pickPort(range, new Set(), new Map())).toBe(100);
  });

  it('when every free port was used: the one released longest ago (the lowest of equals); null when none is free', () => {
    const released = new Map([[100, 30], [101, 10], [102, 20], [103, 10], [104, 40]]);
    expect(pickPort(range, new Set(), released)).toBe(101);
    expect(pickPort(range, new Set([101]), released)).toBe(103);
    expect(pickPort(range, new Set([101, 103]), released)).toBe(102);
    expect(pickPort(range, new Set([100, 101, 102, 103, 104]), released)).toBeNull();
  });

  it('picks among 5000 ports, releases outside the range ignored', () => {
    const big = { from: 20000, to: 24999 };
    const released = new Map<number, number>();
    for (let p = big.from; p <= big.to; p++) released.set(p, 1_000_000 - p);
    released.set(19999, 0);
    expect(pickPort(big, new Set([24999]), released)).toBe(24998);
    released.delete(23456);
    expect(pickPort(big, new Set(), released)).toBe(23456);
  });
});

describe.each(DB_TARGETS)('port reuse on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('reservations and releases', () => {
    let t: TestDatabase;
    const ports: PortRanges = { ssh: { from: 40000, to: 40002 }, jupyter: { from: 40010, to: 40012 } };
    const reserve = (envId: string, hostId = 'host-reuse') =>
      t.db.transaction().execute(async (trx) => {
        const space = (await lockPortSpace(trx, hostId))!;
        const taken = await reservePorts(trx, { envId, hostId, space, ports, wantJupyter: false });
        await trx.updateTable('environments').set({ ssh_port: taken!.ssh }).where('id', '=', envId).execute();
        return taken!.ssh;
      });
    const release = (envId: string) => t.db.transaction().execute((trx) => releaseAll(trx, envId));
    const releases = () => t.db.selectFrom('port_releases').select(['host_id', 'port', 'released_at']).orderBy('port').execute();
    /** Sequential transactions already get later now(); this makes it plain on any clock. */
    const tick = () => new Promise((r) => setTimeout(r, 5));

    beforeAll(async () => {
      t = await createTestDatabase(target);
      await insertHost(t.db, 'host-reuse');
      for (const id of ['env-r1', 'env-r2', 'env-r3', 'env-r4', 'env-r5']) await placeEnvironment(t.db, id, 'host-reuse', { status: 'running' });
    });
    afterAll(async () => {
      await t?.close();
    });

    it('hands out unused ports first, then the one freed longest ago; releases are recorded once per port', async () => {
      expect(await reserve('env-r1')).toBe(40000);
      expect(await reserve('env-r2')).toBe(40001);
      await release('env-r1');
      expect((await releases()).map((r) => [r.host_id, r.port])).toEqual([['host-reuse', 40000]]);
      // 40000 is free again, but 40002 was never used.
      expect(await reserve('env-r3')).toBe(40002);
      await tick();
      await release('env-r2');
      // Both used ports are free: 40000 was given back first.
      expect(await reserve('env-r4')).toBe(40000);
      const before = (await releases()).find((r) => r.port === 40000)!.released_at;
      await tick();
      await release('env-r4');
      const after = await releases();
      expect(after.map((r) => r.port)).toEqual([40000, 40001]);
      expect(after[0]!.released_at.getTime()).toBeGreaterThan(before.getTime());
      // Now 40001 is the one freed longest ago.
      expect(await reserve('env-r5')).toBe(40001);
    });

    it('a port moved off (taken on the host) is recorded as released, and the move avoids recently freed ports', async () => {
      // env-r3 holds 40002, env-r5 40001; 40000 was freed last. The move's only choice is 40000.
      const move = await movePortOff(t.db, ports, 'env-r3', 40002);
      expect(move).toEqual({ purpose: 'ssh', from: 40002, to: 40000 });
      expect((await releases()).map((r) => r.port)).toEqual([40000, 40001, 40002]);
    });

    it('the hosts of one machine share their release times', async () => {
      await insertHost(t.db, 'host-sib-a');
      await insertHost(t.db, 'host-sib-b');
      await t.db.updateTable('hosts').set({ machine_id: 'machine-reuse', publish_address: '0.0.0.0' }).where('id', 'in', ['host-sib-a', 'host-sib-b']).execute();
      await placeEnvironment(t.db, 'env-sa', 'host-sib-a', { status: 'running' });
      await placeEnvironment(t.db, 'env-sb', 'host-sib-b', { status: 'running' });
      await placeEnvironment(t.db, 'env-sb2', 'host-sib-b', { status: 'running' });
      expect(await reserve('env-sa', 'host-sib-a')).toBe(40000);
      await release('env-sa');
      // 40000 was freed on the sibling host: host-sib-b takes the ports never used on the machine first.
      expect(await reserve('env-sb', 'host-sib-b')).toBe(40001);
      expect(await reserve('env-sb2', 'host-sib-b')).toBe(40002);
    });
  });
});
