import { createPrivateKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { sql } from 'kysely';
import { pino } from 'pino';
import { tlsChannelCredentials } from '../../common/grpc-tls.js';
import { createCsr } from '../../common/pki.js';
import { buildApi } from '../../controller/api/routes.js';
import { bootstrapAdmin } from '../../controller/users/bootstrap.js';
import { ControlPlaneClient } from '../../gen/remotegpu/v1/control_plane.js';
import { DB_TARGETS } from '../helpers/databases.js';
import { startTestAgent, type TestAgent } from '../helpers/test-agent.js';
import { TEST_SECRET_KEY } from '../helpers/api.js';
import { JOIN_TOKEN, startHostsFixture, type HostsFixture } from './hosts/fixture.js';

// "No usable secret at rest": after admins, users, API tokens, join tokens, registered hosts and a
// renewed certificate exist, every table is dumped. Nothing in it is a secret that was handed out,
// and no value in it lets a client authenticate: not as a user (REST), not as a joining host
// (Register), not as a host or as the controller (no private key).

const ADMIN_TOKEN = 'rgpu_secrets-at-rest-admin-token-0123456789';

describe.each(DB_TARGETS)('secrets at rest on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('a dump of every table', () => {
    let f: HostsFixture;
    const agents: TestAgent[] = [];
    const handedOut: string[] = [];

    beforeAll(async () => {
      f = await startHostsFixture(target);
      await bootstrapAdmin(f.db, ADMIN_TOKEN);
      const user = await f.services.users.create({ name: 'alice', email: null, role: 'user' });
      handedOut.push(ADMIN_TOKEN, JOIN_TOKEN, TEST_SECRET_KEY, (await f.services.users.createToken(user.id, 'laptop', undefined)).token);
      const join = await f.services.joinTokens.create({ description: 'rack 7', maxUses: 5, requiresApproval: false, createdBy: null });
      handedOut.push(join.token, join.token.slice(0, join.token.indexOf('@')));
      for (const joinToken of [JOIN_TOKEN, join.token.slice(0, join.token.indexOf('@'))]) {
        const a = await startTestAgent({ ...f.join, joinToken, gpus: 1 });
        agents.push(a);
        await a.report();
      }
      await agents[0]!.renew();
      for (const a of agents) handedOut.push(a.keyPem, a.certPem);
      handedOut.push(f.services.trust.ca.keyPem);
    });
    afterAll(async () => {
      await Promise.all(agents.map((a) => a.close()));
      await f?.close();
    });

    async function dump(): Promise<Record<string, unknown[]>> {
      const tables = await sql<{ table_name: string }>`select table_name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`.execute(f.db);
      const out: Record<string, unknown[]> = {};
      for (const { table_name } of tables.rows) out[table_name] = (await sql<unknown>`select * from ${sql.table(table_name)}`.execute(f.db)).rows;
      return out;
    }

    function strings(value: unknown, into: Set<string>): Set<string> {
      if (typeof value === 'string') into.add(value);
      else if (Array.isArray(value)) for (const v of value) strings(v, into);
      else if (value && typeof value === 'object' && !(value instanceof Date)) for (const v of Object.values(value)) strings(v, into);
      return into;
    }

    it('holds none of the secrets handed out, and no private key', async () => {
      const tables = await dump();
      expect(Object.keys(tables)).toEqual(expect.arrayContaining(['users', 'api_tokens', 'join_tokens', 'hosts', 'host_certificates', 'cluster_ca', 'settings']));
      expect(tables.host_certificates!.length).toBe(3);
      const text = JSON.stringify(tables);
      for (const secret of handedOut) expect(text).not.toContain(secret.trim());
      expect(text).not.toMatch(/PRIVATE KEY/);
      for (const value of strings(tables, new Set())) {
        expect(() => createPrivateKey(value)).toThrow();
      }
    });

    it('no value in it authenticates a user (REST) or a joining host (Register)', async () => {
      const candidates = [...strings(await dump(), new Set())].filter((v) => v.length >= 16 && v.length <= 4096);
      expect(candidates.length).toBeGreaterThan(10);
      const app = buildApi({ services: f.services, logger: pino({ level: 'silent' }) });
      const { keyPem, csrPem } = await createCsr('probe');
      expect(keyPem).toBeTruthy();
      const client = new ControlPlaneClient(f.address, tlsChannelCredentials({ caPem: f.caPem, expect: { kind: 'controller' } }));
      const hostsBefore = (await f.db.selectFrom('hosts').select('id').execute()).length;
      try {
        for (const value of candidates) {
          // A header cannot carry a line break: multi-line values (PEM certificates) cannot be bearer tokens at all.
          if (!/[\r\n]/.test(value)) {
            const res = await app.request('/api/v1/environments', { headers: { authorization: `Bearer ${value}` } });
            expect(res.status, `REST accepted a stored value as a token`).toBe(401);
          }
          const err = await new Promise<ServiceError | undefined>((resolve) =>
            client.register({ joinToken: value, facts: agents[0]!.facts, csrPem }, new Metadata(), { deadline: Date.now() + 5000 }, (e) => resolve(e ?? undefined)),
          );
          expect(err?.details ?? 'registered', 'Register accepted a stored value as a join token').toMatch(/join token/);
        }
      } finally {
        client.close();
      }
      expect((await f.db.selectFrom('hosts').select('id').execute()).length).toBe(hostsBefore);
    });
  });
});
