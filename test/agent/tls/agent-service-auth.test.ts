import { credentials, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { bearerMetadata } from '../../../common/grpc.js';
import { ReloadableServerCredentials, tlsChannelCredentials, type TlsMaterial } from '../../../common/grpc-tls.js';
import { createCa, type KeyAndCert } from '../../../common/pki.js';
import { AgentServiceClient, type LogLine } from '../../../gen/remotegpu/v1/agent.js';
import { serveAgentService, type AgentServiceAuth, type ListeningAgentService } from '../../../agent/agent-service.grpc.js';
import { emptyRuntime, hostMaterial, material } from './fixtures.js';

// Who may call an agent, over real gRPC with real TLS on loopback: only a client whose certificate
// the cluster CA issued to the controller. No certificate, a certificate of another CA: refused at
// the handshake; another host's certificate: PERMISSION_DENIED.

const HOST = 'host-agent1';
const running: ListeningAgentService[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.shutdown();
});

async function serveWith(auth: AgentServiceAuth): Promise<string> {
  const s = await serveAgentService('127.0.0.1:0', {
    runtime: emptyRuntime(),
    logger: pino({ level: 'silent' }),
    processEnv: process.env,
    auth,
    sshReady: () => false,
    applied: () => {},
  });
  running.push(s);
  return `127.0.0.1:${s.port}`;
}

function client(address: string, ca: KeyAndCert, as?: TlsMaterial): AgentServiceClient {
  return new AgentServiceClient(address, tlsChannelCredentials({ caPem: ca.certPem, keyPem: as?.keyPem, certPem: as?.certPem, expect: { kind: 'host', hostId: HOST } }));
}

function inspect(c: AgentServiceClient, metadata = bearerMetadata('')): Promise<ServiceError | string> {
  return new Promise((resolve) =>
    c.inspectEnvironment({ envId: 'env-x' }, metadata, { deadline: Date.now() + 5000 }, (err, res) => {
      c.close();
      resolve(err ?? String(res?.status?.envId));
    }),
  );
}

function logs(c: AgentServiceClient): Promise<ServiceError | string[]> {
  return new Promise((resolve) => {
    const lines: string[] = [];
    const call = c.streamLogs({ envId: 'env-x', tailLines: 10, follow: false });
    call.on('data', (l: LogLine) => lines.push(l.text));
    call.on('error', (err: ServiceError) => resolve(err));
    call.on('end', () => resolve(lines));
  });
}

describe('AgentService over mutual TLS', () => {
  it('lets only the controller in: no certificate, another CA or another host are refused', async () => {
    const ca = await createCa('cluster CA');
    const other = await createCa('other CA');
    const address = await serveWith({ kind: 'mtls', credentials: new ReloadableServerCredentials(await hostMaterial(ca, HOST), true) });

    const controller = await material(ca, { kind: 'controller' });
    expect(await inspect(client(address, ca, controller))).toBe('env-x');
    expect(await logs(client(address, ca, controller))).toEqual(['hello']);

    const anonymous = (await inspect(client(address, ca))) as ServiceError;
    expect(anonymous.code).toBe(GrpcStatus.UNAVAILABLE);
    const foreignController = (await inspect(client(address, ca, await material(other, { kind: 'controller' })))) as ServiceError;
    expect(foreignController.code).toBe(GrpcStatus.UNAVAILABLE);

    const otherHost = (await inspect(client(address, ca, await hostMaterial(ca, 'host-other')))) as ServiceError;
    expect(otherHost.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(otherHost.details).toBe('only the controller may call the agent; the client presents host host-other');
    const sameHost = (await inspect(client(address, ca, await hostMaterial(ca, HOST)))) as ServiceError;
    expect(sameHost.code).toBe(GrpcStatus.PERMISSION_DENIED);
    const streamed = (await logs(client(address, ca, await hostMaterial(ca, 'host-other')))) as ServiceError;
    expect(streamed.code).toBe(GrpcStatus.PERMISSION_DENIED);
    // A bearer secret is no way in under TLS.
    expect(((await inspect(client(address, ca, await hostMaterial(ca, 'host-other')), bearerMetadata('anything'))) as ServiceError).code).toBe(GrpcStatus.PERMISSION_DENIED);
  });

  it('accepts no connection before registration, then serves the host certificate, and a renewed one without a restart', async () => {
    const ca = await createCa('cluster CA');
    const creds = new ReloadableServerCredentials(undefined, true);
    const address = await serveWith({ kind: 'mtls', credentials: creds });
    const controller = await material(ca, { kind: 'controller' });
    expect(((await inspect(client(address, ca, controller))) as ServiceError).code).toBe(GrpcStatus.UNAVAILABLE);

    creds.update(await hostMaterial(ca, HOST));
    const kept = client(address, ca, controller);
    await new Promise<void>((resolve, reject) => kept.inspectEnvironment({ envId: 'a' }, (err) => (err ? reject(err) : resolve())));
    creds.update(await hostMaterial(ca, HOST)); // renewed: a new key and certificate
    expect(await inspect(client(address, ca, controller))).toBe('env-x');
    expect(await inspect(kept)).toBe('env-x'); // the connection made before the renewal still works
  });
});

describe('AgentService in insecure mode (REMOTEGPU_GRPC_INSECURE=1)', () => {
  it('needs the host credential as a bearer secret', async () => {
    let credential: string | undefined = undefined;
    const address = await serveWith({ kind: 'bearer', credential: () => credential });
    const plain = () => new AgentServiceClient(address, credentials.createInsecure());
    expect(((await inspect(plain(), bearerMetadata('nothing-yet'))) as ServiceError).code).toBe(GrpcStatus.UNAUTHENTICATED);
    credential = 'host-credential-0123456789';
    expect(((await inspect(plain(), bearerMetadata('wrong-credential'))) as ServiceError).code).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(((await inspect(plain())) as ServiceError).code).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(await inspect(plain(), bearerMetadata(credential))).toBe('env-x');
  });
});
