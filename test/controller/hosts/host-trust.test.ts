import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { tlsChannelCredentials } from '../../../common/grpc-tls.js';
import { createCa, createCsr, ecKeySha256, issueCertificate, readCsr } from '../../../common/pki.js';
import { ControlPlaneClient } from '../../../gen/remotegpu/v1/control_plane.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { startTestAgent, type TestAgent } from '../../helpers/test-agent.js';
import { startHostsFixture, type HostsFixture } from './fixture.js';

// Host trust over real gRPC with mutual TLS on loopback: who the ControlPlane accepts, replayed
// registrations, join tokens that expired or were used up, hosts waiting for approval, certificate
// renewal, and the plaintext mode's derived credentials.

const HOUR = 3_600_000;
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: ServiceError) => e,
  );

/** A ReportStatus from a raw client presenting `key`/`cert` (or nothing). */
function rawReport(f: HostsFixture, hostId: string, own: { keyPem?: string; certPem?: string }): Promise<unknown> {
  const client = new ControlPlaneClient(f.address, tlsChannelCredentials({ caPem: f.caPem, ...own, expect: { kind: 'controller' } }));
  return new Promise((resolve, reject) =>
    client.reportStatus({ hostId, facts: undefined, environments: [], events: [], seq: 99, runtimeUnavailable: false, runtimeError: '' }, new Metadata(), { deadline: Date.now() + 5000 }, (err, r) => {
      client.close();
      if (err) reject(err);
      else resolve(r);
    }),
  );
}

const countHosts = async (f: HostsFixture) => (await f.db.selectFrom('hosts').select('id').execute()).length;

describe.each(DB_TARGETS)('host trust on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('mutual TLS', () => {
    let f: HostsFixture;
    const agents: TestAgent[] = [];
    const agent = async (opts: Partial<Parameters<typeof startTestAgent>[0]> = {}) => {
      const a = await startTestAgent({ ...f.join, gpus: 1, ...opts });
      agents.push(a);
      return a;
    };

    beforeAll(async () => {
      f = await startHostsFixture(target);
    });
    afterEach(async () => {
      await Promise.all(agents.splice(0).map((a) => a.close()));
    });
    afterAll(async () => {
      await f?.close();
    });

    it('refuses a report without a client certificate, with one from another CA, or naming another host', async () => {
      const a = await agent();
      const b = await agent();
      expect((await failure(rawReport(f, a.hostId, {})))?.code).toBe(status.UNAUTHENTICATED);

      const otherCa = await createCa('another cluster');
      const { keyPem, csrPem } = await createCsr('x');
      const foreign = await issueCertificate({ ca: otherCa, publicKey: (await readCsr(csrPem)).csr.publicKey, identity: { kind: 'host', hostId: a.hostId }, validityMs: HOUR });
      const err = await failure(rawReport(f, a.hostId, { keyPem, certPem: foreign.certPem }));
      expect(err?.code).toBe(status.UNAUTHENTICATED);
      expect(err?.details).toMatch(/client certificate issued by the cluster CA is required/);

      // b's valid certificate used to report as a: refused, a's host row untouched.
      const before = await f.db.selectFrom('hosts').select('last_seq').where('id', '=', a.hostId).executeTakeFirstOrThrow();
      const impersonation = await failure(rawReport(f, a.hostId, { keyPem: b.keyPem, certPem: b.certPem }));
      expect(impersonation?.code).toBe(status.PERMISSION_DENIED);
      expect(impersonation?.details).toContain(`for host ${b.hostId}, not host ${a.hostId}`);
      const after = await f.db.selectFrom('hosts').select('last_seq').where('id', '=', a.hostId).executeTakeFirstOrThrow();
      expect(after.last_seq).toBe(before.last_seq);

      // Its own certificate works.
      await a.report();
    });

    it('a certificate signed by the cluster CA but never issued to the host (a stolen CA key aside) is refused', async () => {
      const a = await agent();
      const { keyPem, csrPem } = await createCsr('x');
      const forged = await issueCertificate({ ca: f.services.trust.ca, publicKey: (await readCsr(csrPem)).csr.publicKey, identity: { kind: 'host', hostId: a.hostId }, validityMs: HOUR });
      const err = await failure(rawReport(f, a.hostId, { keyPem, certPem: forged.certPem }));
      expect(err?.code).toBe(status.UNAUTHENTICATED);
      expect(err?.details).toMatch(/not issued to host/);
    });

    it('a removed host is refused with NOT_FOUND, and the agent is told to reset', async () => {
      const a = await agent();
      await f.db.deleteFrom('hosts').where('id', '=', a.hostId).execute();
      const err = await failure(a.report());
      expect(err?.code).toBe(status.NOT_FOUND);
      expect(err?.details).toMatch(/remotegpu-agent reset/);
    });

    it('refuses a captured registration replayed later, creating nothing', async () => {
      const a = await agent();
      const captured = a.lastRegisterRequest!;
      const hosts = await countHosts(f);
      const replayer = await agent({ register: false });
      const err = await failure(replayer.register({ request: captured }));
      expect(err?.code).toBe(status.ALREADY_EXISTS);
      expect(err?.details).toMatch(/replayed registration/);
      expect(await countHosts(f)).toBe(hosts);
    });

    it('refuses an expired and a used-up join token; a token needing approval registers a pending host', async () => {
      const once = await f.services.joinTokens.create({ description: 'one host', maxUses: 1, requiresApproval: true, createdBy: null });
      const secret = once.token.slice(0, once.token.indexOf('@'));
      expect(once.token.endsWith(`@${f.services.trust.caPin}`)).toBe(true);

      const pending = await agent({ joinToken: secret, register: false });
      const res = await pending.register();
      expect(res.pendingApproval).toBe(true);
      const row = await f.db.selectFrom('hosts').select(['approved', 'join_token_id']).where('id', '=', pending.hostId).executeTakeFirstOrThrow();
      expect(row).toEqual({ approved: false, join_token_id: once.id });
      await pending.report(); // a pending host reports (its liveness shows) ...
      const listed = await f.services.hosts.list({ status: 'pending_approval' }, { page: 1, pageSize: 100 });
      expect(listed.items.map((h) => h.id)).toContain(pending.hostId);

      const hosts = await countHosts(f);
      const usedUp = await failure(agent({ joinToken: secret }));
      expect(usedUp?.code).toBe(status.UNAUTHENTICATED);
      expect(usedUp?.details).toMatch(/used up \(1 of 1 uses\)/);

      const expiring = await f.services.joinTokens.create({ description: 'expired', expiresAt: new Date(Date.now() + 60_000), createdBy: null });
      await f.db.updateTable('join_tokens').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', expiring.id).execute();
      const expired = await failure(agent({ joinToken: expiring.token.slice(0, expiring.token.indexOf('@')) }));
      expect(expired?.code).toBe(status.UNAUTHENTICATED);
      expect(expired?.details).toMatch(/expired at/);
      expect(expired?.details).not.toContain(expiring.token);
      expect(await countHosts(f)).toBe(hosts);

      await f.services.hosts.approve(pending.hostId);
      expect((await f.db.selectFrom('hosts').select('approved').where('id', '=', pending.hostId).executeTakeFirstOrThrow()).approved).toBe(true);
    });

    it('renews a certificate for a new key: reports go on with it; renewing with a used key is refused', async () => {
      const a = await agent();
      const firstCert = a.certPem;
      await a.renew();
      expect(a.certPem).not.toBe(firstCert);
      await a.report();
      const issued = await f.db.selectFrom('host_certificates').select('serial').where('host_id', '=', a.hostId).execute();
      expect(issued).toHaveLength(2);

      // The CSR of the registration again: its key was certified already.
      const replay = new ControlPlaneClient(f.address, tlsChannelCredentials({ caPem: f.caPem, keyPem: a.keyPem, certPem: a.certPem, expect: { kind: 'controller' } }));
      const err = await failure(
        new Promise((resolve, reject) =>
          replay.renewCertificate({ hostId: a.hostId, csrPem: a.lastRegisterRequest!.csrPem }, new Metadata(), (e, r) => (e ? reject(e) : resolve(r))),
        ),
      );
      replay.close();
      expect(err?.code).toBe(status.ALREADY_EXISTS);
      // Without a certificate, renewal is refused.
      const anonymous = new ControlPlaneClient(f.address, tlsChannelCredentials({ caPem: f.caPem, expect: { kind: 'controller' } }));
      const { csrPem } = await createCsr('x');
      const refused = await failure(
        new Promise((resolve, reject) => anonymous.renewCertificate({ hostId: a.hostId, csrPem }, new Metadata(), (e, r) => (e ? reject(e) : resolve(r)))),
      );
      anonymous.close();
      expect(refused?.code).toBe(status.UNAUTHENTICATED);
    });
    it('a renewal supersedes the older certificates: they end within minutes and can no longer renew (a stolen old key cannot fork the host)', async () => {
      const a = await agent();
      const old = { keyPem: a.keyPem, certPem: a.certPem };
      await a.renew();
      const rows = await f.db.selectFrom('host_certificates').select(['cert_sha256', 'not_after']).where('host_id', '=', a.hostId).orderBy('issued_at').execute();
      expect(rows).toHaveLength(2);
      expect(rows[0]!.not_after.getTime()).toBeLessThanOrEqual(Date.now() + 125_000);
      expect(rows[1]!.not_after.getTime()).toBeGreaterThan(Date.now() + 3_000_000);

      const thief = new ControlPlaneClient(f.address, tlsChannelCredentials({ caPem: f.caPem, ...old, expect: { kind: 'controller' } }));
      const { csrPem } = await createCsr('thief');
      const err = await failure(
        new Promise((resolve, reject) => thief.renewCertificate({ hostId: a.hostId, csrPem }, new Metadata(), (e, r) => (e ? reject(e) : resolve(r)))),
      );
      thief.close();
      expect(err?.code).toBe(status.PERMISSION_DENIED);
      expect(err?.details).toMatch(/only the newest certificate/);
      // Once the grace is over the old certificate is refused outright.
      await f.db.updateTable('host_certificates').set({ not_after: new Date(Date.now() - 1000) }).where('cert_sha256', '=', rows[0]!.cert_sha256).execute();
      expect((await failure(rawReport(f, a.hostId, old)))?.code).toBe(status.UNAUTHENTICATED);
      await a.report();
    });

    it('one key has one hash however its point is encoded (a compressed re-encoding is still a replay)', async () => {
      const { csrPem } = await createCsr('k');
      const { csr, keySha256 } = await readCsr(csrPem);
      const { createPublicKey } = await import('node:crypto');
      const jwk = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' }).export({ format: 'jwk' });
      const x = Buffer.from(jwk.x!, 'base64url');
      const y = Buffer.from(jwk.y!, 'base64url');
      // SubjectPublicKeyInfo of the same P-256 point, compressed (0x02/0x03 prefix, x only).
      const header = Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex');
      const compressed = Buffer.concat([header, Buffer.from([2 + (y[y.length - 1]! & 1)]), x]);
      expect(ecKeySha256(compressed)).toBe(keySha256);
    });

    it('dials an agent only when it serves a certificate issued to its host (a CA-signed forgery is refused)', async () => {
      const a = await agent();
      expect((await (await f.services.agents.forHost(a.hostId)).inspect('env-1')).state).toBe('absent');
      const { keyPem, csrPem } = await createCsr('forged');
      const forged = await issueCertificate({ ca: f.services.trust.ca, publicKey: (await readCsr(csrPem)).csr.publicKey, identity: { kind: 'host', hostId: a.hostId }, validityMs: HOUR });
      a.useCertificate(keyPem, forged.certPem);
      f.services.agents.close(); // a new connection, so a new handshake
      const err = await (await f.services.agents.forHost(a.hostId)).inspect('env-1').then(
        () => undefined,
        (e: { code: string }) => e,
      );
      expect(err?.code).toBe('unavailable');
      expect(a.calls.inspect).toBe(1);
    });

    it('revoking a host locks it out at once: reports refused, the controller stops calling it, and it goes offline', async () => {
      const a = await agent();
      await a.report();
      const before = await f.services.agents.forHost(a.hostId);
      expect((await before.inspect('env-1')).state).toBe('absent');
      const detail = await f.services.hosts.revoke(a.hostId);
      expect(detail).toMatchObject({ id: a.hostId });
      expect((await failure(a.report()))?.code).toBe(status.UNAUTHENTICATED);
      const refused = await f.services.agents.forHost(a.hostId).then(
        () => undefined,
        (e: { code: string; message: string }) => e,
      );
      expect(refused?.code).toBe('unavailable');
      expect(refused?.message).toMatch(/no valid certificate/);
      expect(a.calls.inspect).toBe(1);
      expect(await f.services.registry.authenticate(a.hostId, { peer: undefined, bearer: '' }).catch((e: Error) => e.message)).toMatch(/client certificate/);
      await f.services.hostLiveness.runOnce();
      expect(f.observer.offline).toContain(a.hostId);
      const row = await f.db.selectFrom('hosts').select(['approved', 'last_report_at']).where('id', '=', a.hostId).executeTakeFirstOrThrow();
      expect(row.approved).toBe(false);
      expect(row.last_report_at!.getTime()).toBe(0);
      await expect(f.services.hosts.revoke('host-nope000000')).rejects.toMatchObject({ code: 'not_found' });
    });

  });

  describe.skipIf(target.skipReason !== '')('plaintext mode (REMOTEGPU_GRPC_INSECURE=1)', () => {
    let f: HostsFixture;
    beforeAll(async () => {
      f = await startHostsFixture(target, { REMOTEGPU_GRPC_INSECURE: '1' });
    });
    afterAll(async () => {
      await f?.close();
    });

    it('hands out a credential derived from the secret key, stored nowhere, and checks it on every call both ways', async () => {
      const a = await startTestAgent({ ...f.join, gpus: 1 });
      try {
        expect(a.credential).toBe(f.services.trust.hostCredential(a.hostId));
        await a.report();
        expect((await failure(a.report({ credential: 'x'.repeat(43) })))?.code).toBe(status.UNAUTHENTICATED);
        const api = await f.services.agents.forHost(a.hostId);
        expect((await api.inspect('env-1')).state).toBe('absent');
        expect(a.unauthenticatedCalls).toBe(0);
        const dump = JSON.stringify(await f.db.selectFrom('hosts').selectAll().execute());
        expect(dump).not.toContain(a.credential);
      } finally {
        await a.close();
      }
    });
  });
});
