import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type KyselyPlugin } from 'kysely';
import { pino } from 'pino';
import { buildApi } from '../../../controller/api/routes.js';
import { loadControllerConfig } from '../../../controller/config.js';
import { openDatabase, type Db } from '../../../controller/db/database.js';
import { ControllerServices } from '../../../controller/services.js';
import { ClusterTrust } from '../../../controller/trust/cluster-trust.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { createTestApi, TEST_JOIN_TOKEN, TEST_SECRET_KEY, type TestApi } from '../../helpers/api.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';

// Issue 12, item 2: two controller replicas (two sets of services, each with its own capacity
// index and, on PostgreSQL, its own connection pool) on one database, placing concurrently. No GPU
// or port is reserved twice, every GPU is used once the cluster is full, no environment row is
// inserted just to be rolled back, and a replica whose index is stale (room freed by the other
// one) still places instead of refusing.

const GPUS_PER_HOST = 8;
const HOSTS = ['host-a', 'host-b', 'host-c', 'host-d', 'host-e', 'host-f'];
const CAPACITY = HOSTS.length * GPUS_PER_HOST;
const CREATES = 120;

interface Replica {
  readonly services: ControllerServices;
  readonly app: ReturnType<typeof buildApi>;
  /** `insert into environments` statements this replica sent (committed or not). */
  inserts: number;
}

async function replica(db: Db): Promise<Replica> {
  const logger = pino({ level: 'silent' });
  const config = loadControllerConfig({ REMOTEGPU_JOIN_TOKEN: TEST_JOIN_TOKEN, REMOTEGPU_SECRET_KEY: TEST_SECRET_KEY });
  const self: Replica = { inserts: 0 } as Replica;
  const counter: KyselyPlugin = {
    transformQuery: (args) => {
      const node = args.node;
      if (node.kind === 'InsertQueryNode' && node.into?.table.identifier.name === 'environments') self.inserts++;
      return node;
    },
    transformResult: async (args) => args.result,
  };
  const counted = db.withPlugin(counter);
  const trust = await ClusterTrust.create({ db: counted, config, logger });
  const services = new ControllerServices({ db: counted, config, logger, trust });
  return Object.assign(self, { services, app: buildApi({ services, logger }) });
}

describe.each(DB_TARGETS)('two controller replicas placing on $name', (target) => {
  describe.skipIf(target.skipReason !== '')(`${CREATES} concurrent creates, ${CAPACITY} GPUs`, () => {
    let api: TestApi;
    let second: { db: Db; close(): Promise<void> } | undefined;
    let replicas: Replica[];
    let token: string;

    beforeAll(async () => {
      api = await createTestApi(target, { poolSize: 20 });
      // The other replica: its own pool on the same PostgreSQL database (PGlite: the one embedded database).
      second = api.database.url ? await openDatabase({ databaseUrl: api.database.url, dataDir: 'unused', poolSize: 20 }) : undefined;
      replicas = [await replica(api.db), await replica(second?.db ?? api.db)];
      await seedImage(api.db);
      for (const id of HOSTS) await seedHost(api.db, id, { gpus: GPUS_PER_HOST });
      // Two agents of one machine publishing on the same address: one port space.
      await api.db.updateTable('hosts').set({ machine_id: 'machine-1', publish_address: '10.0.0.7' }).where('id', 'in', ['host-e', 'host-f']).execute();
      token = (await api.createUser('racer')).token;
    });
    afterAll(async () => {
      for (const r of replicas ?? []) await r.services.stop();
      await second?.close();
      await api?.close();
    });

    const create = async (r: Replica, name: string) => {
      const res = await r.app.request('/api/v1/environments', {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name, image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: 2 ** 30, gpu: 1, storage: 2 ** 30 }),
      });
      return { status: res.status, body: (await res.json()) as { code: number; data: { host_id?: string } | null } };
    };

    it('never reserves a GPU or a port twice, uses every GPU, inserts only placed rows', async () => {
      // Each replica's index is loaded (one create each) before the burst; from then on neither sees
      // the other's placements but through its own transactions and refreshes.
      expect((await create(replicas[0]!, 'warm-0')).status).toBe(201);
      expect((await create(replicas[1]!, 'warm-1')).status).toBe(201);
      const results = await Promise.all(Array.from({ length: CREATES }, (_, i) => create(replicas[i % 2]!, `race-${i}`)));
      const placed = results.filter((r) => r.status === 201);
      expect(placed).toHaveLength(CAPACITY - 2);
      const refused = results.filter((r) => r.status !== 201);
      expect(refused.every((r) => r.status === 409 && r.body.code === 40902)).toBe(true);
      // Both replicas placed some of them.
      for (const side of [0, 1]) expect(results.some((r, i) => i % 2 === side && r.status === 201)).toBe(true);

      const dupes = await sql<{ n: string }>`select count(*) as n from (select gpu_uuid from gpu_reservations group by gpu_uuid having count(*) > 1) d`.execute(api.db);
      expect(Number(dupes.rows[0]!.n)).toBe(0);
      // Ports: unique per host, and per port space (host-e and host-f share one).
      const ports = await api.db.selectFrom('port_reservations').select(['host_id', 'port']).execute();
      const space = (hostId: string) => (hostId === 'host-f' ? 'host-e' : hostId);
      expect(new Set(ports.map((p) => `${space(p.host_id)}:${p.port}`)).size).toBe(ports.length);
      expect(ports).toHaveLength(CAPACITY * 2);
      // Every GPU is held, each environment holds exactly one, and its row names the host it holds it on.
      const held = await api.db.selectFrom('gpu_reservations as r').innerJoin('environments as e', 'e.id', 'r.env_id').select(['r.host_id', 'e.host_id as env_host']).execute();
      expect(held).toHaveLength(CAPACITY);
      expect(held.every((h) => h.host_id === h.env_host)).toBe(true);
      expect(await api.db.selectFrom('environments').select('id').execute()).toHaveLength(CAPACITY);
      // No environment row was inserted just to be rolled back.
      expect(replicas[0]!.inserts + replicas[1]!.inserts).toBe(CAPACITY);
    });

    it('a replica whose index still sees the cluster full places in room the other freed', async () => {
      // Room freed outside replica 1 (as replica 0's reconciler does after confirmed removals).
      const freed = await api.db.selectFrom('environments').select('id').where('host_id', '=', 'host-c').limit(3).execute();
      const ids = freed.map((e) => e.id);
      await api.db.transaction().execute(async (trx) => {
        await trx.deleteFrom('gpu_reservations').where('env_id', 'in', ids).execute();
        await trx.deleteFrom('port_reservations').where('env_id', 'in', ids).execute();
        await trx.deleteFrom('environment_events').where('env_id', 'in', ids).execute();
        await trx.deleteFrom('environments').where('id', 'in', ids).execute();
      });
      // Replica 1's index knows nothing of it (no refresh yet): every create still finds the room.
      const again = await Promise.all([0, 1, 2].map((i) => create(replicas[1]!, `again-${i}`)));
      expect(again.map((r) => r.status)).toEqual([201, 201, 201]);
      expect(again.map((r) => r.body.data?.host_id)).toEqual(['host-c', 'host-c', 'host-c']);
      expect((await create(replicas[0]!, 'one-too-many')).body.code).toBe(40902);
    });
  });
});
