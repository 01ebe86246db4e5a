import { createServer } from 'node:net';
import { ServerCredentials, status as GrpcStatus } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { ReloadableServerCredentials } from '../../../common/grpc-tls.js';
import { caPin, createCa } from '../../../common/pki.js';
import { ControlPlaneService, type ControlPlaneServer } from '../../../gen/remotegpu/v1/control_plane.js';
import { ControllerTrustError, pinnedControllerCa } from '../../../agent/controller-trust.js';
import { material, serve } from './fixtures.js';

// The agent's first contact: the controller must present a chain up to the CA the join token pins.

const impl: ControlPlaneServer = {
  register: (_call, cb) => cb({ code: GrpcStatus.UNIMPLEMENTED }),
  reportStatus: (_call, cb) => cb({ code: GrpcStatus.UNIMPLEMENTED }),
  renewCertificate: (_call, cb) => cb({ code: GrpcStatus.UNIMPLEMENTED }),
};
const stops: (() => void)[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

async function controllerAt(creds: ServerCredentials): Promise<string> {
  const s = await serve(ControlPlaneService, impl, creds);
  stops.push(s.stop);
  return s.address;
}

async function refusal(address: string, pin: string): Promise<ControllerTrustError> {
  const err = await pinnedControllerCa(address, pin, 3000).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ControllerTrustError);
  return err as ControllerTrustError;
}

describe('controller trust (first contact)', () => {
  it('returns the pinned CA of a controller presenting leaf + CA', async () => {
    const ca = await createCa('cluster CA');
    const address = await controllerAt(new ReloadableServerCredentials(await material(ca, { kind: 'controller' }, { withCa: true }), false));
    const pem = await pinnedControllerCa(address, caPin(ca.certPem));
    expect(caPin(pem)).toBe(caPin(ca.certPem));
    expect(pem).toContain('-----BEGIN CERTIFICATE-----');
  });

  it('refuses a controller whose CA is not the pinned one, naming both hashes', async () => {
    const ca = await createCa('cluster CA');
    const other = await createCa('other cluster CA');
    const address = await controllerAt(new ReloadableServerCredentials(await material(other, { kind: 'controller' }, { withCa: true }), false));
    const err = await refusal(address, caPin(ca.certPem));
    expect(err.kind).toBe('untrusted');
    expect(err.message).toBe(
      `controller ${address} presents a certificate chain whose CA is ${caPin(other.certPem)} (CN=other cluster CA), but the join token pins ${caPin(ca.certPem)}; refusing to register (wrong controller address, or a token from another cluster)`,
    );
  });

  it('refuses a leaf-only chain, from another CA or even from the pinned one (the CA must be presented)', async () => {
    const ca = await createCa('cluster CA');
    const other = await createCa('other CA');
    // The server's own trust store holds neither issuer (OpenSSL would send a trusted issuer along).
    const unrelated = (await createCa('unrelated CA')).certPem;
    const foreign = await controllerAt(new ReloadableServerCredentials({ ...(await material(other, { kind: 'controller' })), caPem: unrelated }, false));
    const err = await refusal(foreign, caPin(ca.certPem));
    expect(err.kind).toBe('untrusted');
    expect(err.message).toMatch(/presents a certificate chain without its CA \(the last certificate, CN=remotegpu-controller, is issued by CN=other CA\), but the join token pins sha256:/);
    const leafOnly = await controllerAt(new ReloadableServerCredentials({ ...(await material(ca, { kind: 'controller' })), caPem: unrelated }, false));
    expect((await refusal(leafOnly, caPin(ca.certPem))).message).toMatch(/without its CA.*is issued by CN=cluster CA/);
  });

  it('refuses a chain that carries the pinned CA without being signed by it', async () => {
    const ca = await createCa('cluster CA');
    const impostor = await createCa('cluster CA'); // the same name, another key
    const leaf = await material(impostor, { kind: 'controller' });
    const address = await controllerAt(new ReloadableServerCredentials({ ...leaf, certPem: leaf.certPem + ca.certPem }, false));
    const err = await refusal(address, caPin(ca.certPem));
    expect(err.kind).toBe('untrusted');
    expect(err.message).toMatch(/did not sign/);
  });

  it('reports a plaintext controller and a closed port as unreachable, with what to check', async () => {
    const ca = await createCa('cluster CA');
    const plaintext = await controllerAt(ServerCredentials.createInsecure());
    const err = await refusal(plaintext, caPin(ca.certPem));
    expect(err.kind).toBe('unreachable');
    expect(err.message).toMatch(/does not answer with TLS.*REMOTEGPU_GRPC_INSECURE/);
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const closed = await refusal(`127.0.0.1:${port}`, caPin(ca.certPem));
    expect(closed.kind).toBe('unreachable');
    expect(closed.message).toMatch(/cannot reach controller 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  });
});
