import { Metadata, Server, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { ReloadableServerCredentials, peerOf, tlsChannelCredentials, type TlsMaterial } from '../../common/grpc-tls.js';
import { caPin, createCa, createCsr, identityOf, issueCertificate, issueKeyAndCertificate, readCsr, type KeyAndCert } from '../../common/pki.js';
import { ControlPlaneClient, ControlPlaneService, type ControlPlaneServer } from '../../gen/remotegpu/v1/control_plane.js';

// Mutual TLS over real gRPC on loopback with the cluster PKI: who may talk to whom.

const HOUR = 3_600_000;

async function hostCert(ca: KeyAndCert, hostId: string, validityMs = HOUR): Promise<TlsMaterial> {
  const { keyPem, csrPem } = await createCsr(hostId);
  const { csr } = await readCsr(csrPem);
  const { certPem } = await issueCertificate({ ca, publicKey: csr.publicKey, identity: { kind: 'host', hostId }, validityMs });
  return { caPem: ca.certPem, keyPem, certPem };
}

/** A ControlPlane whose ReportStatus answers with the caller's identity in report_interval_ms' place. */
async function serve(creds: ReloadableServerCredentials): Promise<{ address: string; seen: string[]; server: Server }> {
  const seen: string[] = [];
  const impl: ControlPlaneServer = {
    register: (_call, cb) => cb(null, { hostId: 'x', hostCredential: '', reportIntervalMs: 1, certificatePem: '', caPem: '', pendingApproval: false }),
    reportStatus: (call, cb) => {
      const peer = peerOf(call);
      seen.push(peer?.identity ? JSON.stringify(peer.identity) : 'none');
      cb(null, { reportIntervalMs: 7 });
    },
    renewCertificate: (_call, cb) => cb({ code: GrpcStatus.UNIMPLEMENTED }),
  };
  const server = new Server();
  server.addService(ControlPlaneService, impl);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, seen, server };
}

function report(client: ControlPlaneClient): Promise<number> {
  return new Promise((resolve, reject) =>
    client.reportStatus({ hostId: 'h', facts: undefined, environments: [], events: [], seq: 1, runtimeUnavailable: false, runtimeError: '' }, new Metadata(), { deadline: Date.now() + 5000 }, (err: ServiceError | null, r) =>
      err ? reject(err) : resolve(r.reportIntervalMs),
    ),
  );
}

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.forceShutdown();
});

describe('mutual TLS with the cluster CA', () => {
  it('identifies a host client, accepts a client without a certificate as anonymous, and refuses a server from another CA', async () => {
    const ca = await createCa('test CA');
    const other = await createCa('other CA');
    const controller = await issueKeyAndCertificate({ ca, identity: { kind: 'controller' }, validityMs: HOUR });
    const s = await serve(new ReloadableServerCredentials({ caPem: ca.certPem, keyPem: controller.keyPem, certPem: controller.certPem + ca.certPem }, false));
    servers.push(s.server);

    const host = await hostCert(ca, 'host-aaa');
    expect(await report(new ControlPlaneClient(s.address, tlsChannelCredentials({ ...host, expect: { kind: 'controller' } })))).toBe(7);
    expect(await report(new ControlPlaneClient(s.address, tlsChannelCredentials({ caPem: ca.certPem, expect: { kind: 'controller' } })))).toBe(7);
    const foreign = await hostCert(other, 'host-aaa');
    expect(await report(new ControlPlaneClient(s.address, tlsChannelCredentials({ ...foreign, caPem: ca.certPem, expect: { kind: 'controller' } })))).toBe(7);
    expect(s.seen).toEqual([JSON.stringify({ kind: 'host', hostId: 'host-aaa' }), 'none', 'none']);

    // A client that pins another CA refuses this server.
    const err = await report(new ControlPlaneClient(s.address, tlsChannelCredentials({ caPem: other.certPem, expect: { kind: 'controller' } }))).catch((e: ServiceError) => e);
    expect((err as ServiceError).code).toBe(GrpcStatus.UNAVAILABLE);
    expect(caPin(ca.certPem)).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(caPin(ca.certPem)).not.toBe(caPin(other.certPem));
  });

  it('refuses a server certificate naming another host, and requires client certificates when asked', async () => {
    const ca = await createCa('test CA');
    const agentB = await hostCert(ca, 'host-bbb');
    const s = await serve(new ReloadableServerCredentials(agentB, true));
    servers.push(s.server);
    const controller = await issueKeyAndCertificate({ ca, identity: { kind: 'controller' }, validityMs: HOUR });
    const ok = tlsChannelCredentials({ caPem: ca.certPem, keyPem: controller.keyPem, certPem: controller.certPem, expect: { kind: 'host', hostId: 'host-bbb' } });
    expect(await report(new ControlPlaneClient(s.address, ok))).toBe(7);
    const wrongHost = tlsChannelCredentials({ caPem: ca.certPem, keyPem: controller.keyPem, certPem: controller.certPem, expect: { kind: 'host', hostId: 'host-ccc' } });
    expect(((await report(new ControlPlaneClient(s.address, wrongHost)).catch((e: ServiceError) => e)) as ServiceError).code).toBe(GrpcStatus.UNAVAILABLE);
    const anonymous = tlsChannelCredentials({ caPem: ca.certPem, expect: { kind: 'host', hostId: 'host-bbb' } });
    expect(((await report(new ControlPlaneClient(s.address, anonymous)).catch((e: ServiceError) => e)) as ServiceError).code).toBe(GrpcStatus.UNAVAILABLE);
    expect(s.seen).toEqual([JSON.stringify({ kind: 'controller' })]);
  });

  it('serves a replaced certificate to new connections (rotation) and nothing before the first one', async () => {
    const ca = await createCa('test CA');
    const creds = new ReloadableServerCredentials(undefined, false);
    const s = await serve(creds);
    servers.push(s.server);
    const client = () => new ControlPlaneClient(s.address, tlsChannelCredentials({ caPem: ca.certPem, expect: { kind: 'host', hostId: 'host-r' } }));
    expect(((await report(client()).catch((e: ServiceError) => e)) as ServiceError).code).toBe(GrpcStatus.UNAVAILABLE);
    const first = await hostCert(ca, 'host-r');
    creds.update(first);
    expect(await report(client())).toBe(7);
    const second = await hostCert(ca, 'host-r');
    creds.update(second);
    expect(await report(client())).toBe(7);
    expect(identityOf(second.certPem)).toEqual({ kind: 'host', hostId: 'host-r' });
  });
});

describe('peerOf', () => {
  const callWith = (pem: string) => ({ getAuthContext: () => ({ sslPeerCertificate: { raw: new X509Certificate(pem).raw } as PeerCertificate }) });

  it('parses a certificate once and never answers one peer with another peer\'s identity', async () => {
    const ca = await createCa('test CA');
    const [a, b] = await Promise.all([hostCert(ca, 'host-a'), hostCert(ca, 'host-b')]);
    const first = peerOf(callWith(a.certPem));
    expect(first?.identity).toEqual({ kind: 'host', hostId: 'host-a' });
    // The same bytes again (a fresh Buffer, as every call gets): the parsed peer is reused.
    expect(peerOf(callWith(a.certPem))).toBe(first);
    expect(peerOf(callWith(b.certPem))?.identity).toEqual({ kind: 'host', hostId: 'host-b' });
    expect(peerOf(callWith(a.certPem))?.identity).toEqual({ kind: 'host', hostId: 'host-a' });
    expect(peerOf({ getAuthContext: () => ({}) })).toBeUndefined();
  });
});
