import { Server, type ServerCredentials, type UntypedServiceImplementation, type ServiceDefinition } from '@grpc/grpc-js';
import type { TlsMaterial } from '../../../common/grpc-tls.js';
import type { ContainerRuntime, ObservedStatus } from '../../../agent/runtime/types.js';
import { createCsr, issueCertificate, issueKeyAndCertificate, readCsr, type Identity, type KeyAndCert } from '../../../common/pki.js';

// Certificates and servers for the agent's TLS tests: everything real (PKI, TLS, gRPC on loopback).

export const HOUR = 3_600_000;

/** A key made here and a certificate for `identity` from `ca` (TLS material presenting leaf + CA when `withCa`). */
export async function material(ca: KeyAndCert, identity: Identity, options: { validityMs?: number; withCa?: boolean } = {}): Promise<TlsMaterial> {
  const { keyPem, certPem } = await issueKeyAndCertificate({ ca, identity, validityMs: options.validityMs ?? HOUR, ips: ['127.0.0.1'] });
  return { caPem: ca.certPem, keyPem, certPem: options.withCa ? certPem + ca.certPem : certPem };
}

/** A certificate for the key of a CSR (what the controller does in Register/RenewCertificate). */
export async function certify(ca: KeyAndCert, csrPem: string, identity: Identity, validityMs: number): Promise<string> {
  const { csr } = await readCsr(csrPem);
  return (await issueCertificate({ ca, publicKey: csr.publicKey, identity, validityMs })).certPem;
}

/** A host's key and certificate made through a CSR, as an agent gets them. */
export async function hostMaterial(ca: KeyAndCert, hostId: string): Promise<TlsMaterial> {
  const { keyPem, csrPem } = await createCsr(hostId);
  return { caPem: ca.certPem, keyPem, certPem: await certify(ca, csrPem, { kind: 'host', hostId }, HOUR) };
}

/** Serves one service on `host` (default 127.0.0.1) and `port` (default: a free one). */
export async function serve(
  definition: ServiceDefinition,
  impl: UntypedServiceImplementation,
  creds: ServerCredentials,
  bind: { host?: string; port?: number } = {},
): Promise<{ address: string; port: number; server: Server; stop: () => void }> {
  const server = new Server();
  server.addService(definition, impl);
  const host = bind.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(`${host}:${bind.port ?? 0}`, creds, (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `${host}:${port}`, port, server, stop: () => server.forceShutdown() };
}

/** A runtime with no containers at all (the AgentService auth tests never reach Docker). */
export function emptyRuntime(): ContainerRuntime {
  const absent = (envId: string): ObservedStatus => ({
    envId,
    state: 'absent',
    containerId: '',
    specHash: '',
    gpuUuids: [],
    exitCode: 0,
    oomKilled: false,
    startedAtMs: 0,
    finishedAtMs: 0,
    message: '',
  });
  return {
    inspect: async (envId: string) => absent(envId),
    list: async () => [],
    logs: async function* () {
      yield { atMs: 1, stream: 'stdout' as const, text: 'hello' };
    },
  } as unknown as ContainerRuntime;
}
