import type { KyselyPlugin } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../../controller/access/principal.js';
import { visibleEnvironments } from '../../../controller/access/visibility.js';
import type { Db } from '../../../controller/db/database.js';
import type { EnvStatus } from '../../../controller/db/schema.js';
import { compactTallies } from '../../../controller/environments/environment-list.js';
import { changeOwner, markLostOnHost, recordOutcome, requestChange } from '../../../controller/environments/environment-writes.js';
import { bulkEnvironments } from '../../../bench/seed-environments.js';
import { createTestApi, type TestApi, type TestUser } from '../../helpers/api.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { seedHost, seedImage } from '../../helpers/hosts.js';

// The environment list after issue 12 (index walks, tallies): the same rows in the same order and
// the same exact total as the seed's query (kept below as `oldPage`), on every page, for every
// kind of caller and filter, also after creates, deletes, status and owner changes.

/** The list as the seed computed it: an OR with a subquery, count(*) and OFFSET over the sorted table. */
async function oldPage(db: Db, p: Principal, f: { status?: EnvStatus; workspaceId?: number; page: number; pageSize: number }) {
  let base = db.selectFrom('environments').where('environments.desired_state', '!=', 'deleted').where(visibleEnvironments(p));
  if (f.status) base = base.where('environments.status', '=', f.status);
  if (f.workspaceId !== undefined) base = base.where('environments.workspace_id', '=', f.workspaceId);
  const count = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  const rows = await base
    .select('environments.id')
    .orderBy('environments.created_at', 'desc')
    .orderBy('environments.id', 'desc')
    .limit(f.pageSize)
    .offset((f.page - 1) * f.pageSize)
    .execute();
  return { ids: rows.map((r) => r.id), total: Number(count.n) };
}

describe.each(DB_TARGETS)('environment list reads on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('list', () => {
    let api: TestApi;
    const users: Record<string, TestUser> = {};
    const principals: Record<string, Principal> = {};
    const ws: Record<string, number> = {};

    beforeAll(async () => {
      api = await createTestApi(target);
      await seedImage(api.db);
      await seedHost(api.db, 'host-a', { gpus: 8 });
      const image = await api.db.selectFrom('images').select('id').executeTakeFirstOrThrow();
      for (const name of ['alice', 'bob', 'carol', 'dave']) {
        users[name] = await api.createUser(name);
        principals[name] = { userId: users[name]!.id, name, role: 'user' };
      }
      principals.admin = { userId: 1, name: 'admin', role: 'admin' };
      ws.red = await api.createWorkspace('red', users.alice!.id);
      ws.blue = await api.createWorkspace('blue', users.carol!.id);
      await api.addMember(ws.red, users.bob!.id);
      await api.addMember(ws.blue, users.alice!.id);
      // 700 rows, 3 per millisecond (ties), a third in workspaces, every 41st deleted.
      const ownerIds = [users.alice!.id, users.bob!.id, users.carol!.id, users.dave!.id];
      await bulkEnvironments(api.db, { count: 700, ownerIds, workspaceIds: [ws.red, ws.blue], workspaceEvery: 3, imageId: image.id, tieEvery: 3, prefix: 'env-l' });
    });
    afterAll(async () => api?.close());

    const tokenOf = (who: string) => (who === 'admin' ? api.adminToken : users[who]!.token);

    /** Every page of the API's list for `who` with `query`, checked against oldPage. */
    async function expectSameAsSeed(who: string, filter: { status?: EnvStatus; workspaceId?: number }, pageSize: number) {
      const qs = (page: number) =>
        `/api/v1/environments?page=${page}&page_size=${pageSize}${filter.status ? `&status=${filter.status}` : ''}${filter.workspaceId ? `&workspace_id=${filter.workspaceId}` : ''}`;
      const first = await oldPage(api.db, principals[who]!, { ...filter, page: 1, pageSize });
      const pages = Math.ceil(first.total / pageSize) + 1; // and one past the end
      const seen: string[] = [];
      for (let page = 1; page <= pages; page++) {
        const res = await api.request('GET', qs(page), { token: tokenOf(who) });
        expect(res.status).toBe(200);
        const old = await oldPage(api.db, principals[who]!, { ...filter, page, pageSize });
        const ids = res.body.data.items.map((e: { env_id: string }) => e.env_id);
        expect(ids, `${who} ${JSON.stringify(filter)} page ${page}`).toEqual(old.ids);
        expect(res.body.data.pagination.total).toBe(old.total);
        seen.push(...ids);
      }
      expect(new Set(seen).size).toBe(first.total);
      return first.total;
    }

    it('lists the same rows in the same order, with the same totals, as the seed on every page (ties, visibility, filters)', async () => {
      for (const who of ['admin', 'alice', 'bob', 'carol', 'dave']) {
        expect(await expectSameAsSeed(who, {}, 23)).toBeGreaterThan(0);
        await expectSameAsSeed(who, { status: 'stopped' }, 17);
        await expectSameAsSeed(who, { workspaceId: ws.red! }, 19);
        await expectSameAsSeed(who, { workspaceId: ws.blue!, status: 'running' }, 11);
      }
      // A workspace the caller is not a member of: only their own rows in it (dave owns some of red's).
      await expectSameAsSeed('dave', { workspaceId: ws.red! }, 100);
    });

    it('answers a list without counting the table (no count(*) over environments, whatever the page)', async () => {
      const statements: string[] = [];
      const plugin: KyselyPlugin = {
        transformQuery: (args) => {
          statements.push(api.db.getExecutor().compileQuery(args.node, args.queryId).sql);
          return args.node;
        },
        transformResult: async (args) => args.result,
      };
      const { listVisible } = await import('../../../controller/environments/environment-list.js');
      for (const who of ['admin', 'alice']) {
        const page = await listVisible(api.db.withPlugin(plugin), principals[who]!, { limit: 20, offset: 200 });
        expect(page.total).toBe((await oldPage(api.db, principals[who]!, { page: 1, pageSize: 1 })).total);
      }
      expect(statements.filter((s) => /count\(\*\)[^"]*"[^"]*"\s+from\s+"environments"/i.test(s))).toEqual([]);
      // The seed's count statement is what the pattern catches.
      expect('select count(*) as "n" from "environments" where').toMatch(/count\(\*\)[^"]*"[^"]*"\s+from\s+"environments"/i);
    });

    it('keeps totals exact after creates, deletes, status and owner changes, rollbacks and folding', async () => {
      const expectTotals = async () => {
        for (const who of ['admin', 'alice', 'bob', 'carol', 'dave']) {
          for (const filter of [{}, { status: 'running' as const }, { status: 'lost' as const }, { workspaceId: ws.red! }]) {
            const res = await api.request('GET', `/api/v1/environments?page_size=1${'status' in filter ? `&status=${filter.status}` : ''}${'workspaceId' in filter ? `&workspace_id=${filter.workspaceId}` : ''}`, { token: tokenOf(who) });
            expect(res.body.data.pagination.total, `${who} ${JSON.stringify(filter)}`).toBe((await oldPage(api.db, principals[who]!, { ...filter, page: 1, pageSize: 1 })).total);
          }
        }
      };
      const body = { name: 'n', image: 'ubuntu20-pytorch:2.0', cpu: 1, memory: 2 ** 30, gpu: 1, storage: 2 ** 30 };
      const created = await api.request('POST', '/api/v1/environments', { token: users.bob!.token, body: { ...body, workspace_id: ws.red } });
      expect(created.status).toBe(201);
      const envId: string = created.body.data.env_id;
      await expectTotals();
      await api.db.transaction().execute(async (trx) => {
        await recordOutcome(trx, envId, 1, { status: 'running' });
      });
      await api.db.transaction().execute((trx) => markLostOnHost(trx, 'host-a', 'host silent', { kind: 'lost', message: 'lost' }));
      await expectTotals();
      await api.db.transaction().execute((trx) => changeOwner(trx, envId, users.alice!.id, { kind: 'owner_changed', message: 'handed over' }));
      await expectTotals();
      // A change rolled back leaves the tallies as they were.
      await expect(
        api.db.transaction().execute(async (trx) => {
          await requestChange(trx, envId, { status: 'stopping', desired_state: 'stopped' }, { kind: 'stop_requested', message: 'stop' });
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      await expectTotals();
      expect((await api.request('DELETE', `/api/v1/environments/${envId}`, { token: users.alice!.token })).status).toBe(204);
      await expectTotals();
      // Folding a scope's rows (one per key) changes no total.
      const rowsBefore = Number((await api.db.selectFrom('environment_tallies').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
      await compactTallies(api.db, principals.admin!);
      const after = await api.db.selectFrom('environment_tallies').select(['owner_id', 'workspace_id', 'status', 'n']).execute();
      expect(after.length).toBeLessThan(rowsBefore);
      expect(after.every((r) => Number(r.n) > 0)).toBe(true);
      expect(new Set(after.map((r) => `${r.owner_id}/${r.workspace_id}/${r.status}`)).size).toBe(after.length);
      await expectTotals();
    });
  });
});
