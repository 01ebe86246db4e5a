import { createPrivateKey, X509Certificate } from 'node:crypto';
import { credentials, Metadata, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { bearerMetadata } from '../common/grpc.js';
import { tlsChannelCredentials, tlsChannelOptions } from '../common/grpc-tls.js';
import { reconnectChannelOptions } from '../common/reconnect.js';
import { caPin, createCsr, identityOf, signedBy } from '../common/pki.js';
import { ControlPlaneClient, type RegisterResponse, type RenewCertificateResponse } from '../gen/remotegpu/v1/control_plane.js';
import type { HostFacts } from '../gen/remotegpu/v1/types.js';
import { pinnedControllerCa } from './controller-trust.js';
import type { AgentIdentity } from './identity.js';

// The two calls that give this host its certificate: Register (once, with the join token, over TLS
// to the pinned controller) and RenewCertificate (a new key and certificate before the current one
// expires, over mutual TLS). Both generate the key here and check what comes back before anything
// is saved: the certificate must name this host, certify this key and chain to the pinned CA.

const CONTROLLER = { kind: 'controller' } as const;
const DEADLINE_MS = 15_000;

/** The controller answered something unusable (not a gRPC status): nothing is saved. */
export class RegistrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RegistrationError';
  }
}

/** Channel credentials of a registered host: mutual TLS with its certificate, or plaintext in insecure mode. */
export function controlPlaneCredentials(identity: AgentIdentity, insecure: boolean): ChannelCredentials {
  if (insecure) return credentials.createInsecure();
  return tlsChannelCredentials({ caPem: identity.caPem, keyPem: identity.keyPem, certPem: identity.certPem, expect: CONTROLLER });
}

/**
 * The ControlPlane client of a registered host for the controller at `address`: its credentials,
 * the controller's TLS name, and reconnect attempts at most `reconnectMaxMs` apart with keepalive.
 */
export function controlPlaneClient(address: string, identity: AgentIdentity, insecure: boolean, reconnectMaxMs: number): ControlPlaneClient {
  // New credentials every time: grpc-js never shares a subchannel between channels whose credentials
  // differ, so a new client connects at once even while an older one waits out its backoff.
  return new ControlPlaneClient(address, controlPlaneCredentials(identity, insecure), { ...tlsChannelOptions(CONTROLLER, insecure), ...reconnectChannelOptions(reconnectMaxMs) });
}

/** Metadata for the calls of a registered host: the bearer credential in insecure mode, nothing under TLS. */
export function callMetadata(identity: AgentIdentity, insecure: boolean): Metadata {
  return insecure ? bearerMetadata(identity.credential ?? '') : new Metadata();
}

export interface RegisterOptions {
  readonly controller: string;
  /** The join token's secret part. */
  readonly joinToken: string;
  /** "sha256:<hex>" of the cluster CA key; required unless insecure. */
  readonly caPin: string | undefined;
  readonly insecure: boolean;
  readonly facts: HostFacts;
}

export interface Registration {
  readonly identity: AgentIdentity;
  readonly reportIntervalMs: number;
  readonly pendingApproval: boolean;
}

/**
 * Registers this host: checks the controller against the pin (TLS), sends a CSR for a new key with
 * the join token, and returns the identity to save. Rejects with ControllerTrustError, a gRPC
 * ServiceError or RegistrationError.
 */
export async function registerHost(o: RegisterOptions): Promise<Registration> {
  const trusted = o.insecure ? undefined : await pinnedControllerCa(o.controller, o.caPin ?? '');
  const { keyPem, csrPem } = await createCsr(o.facts.hostname || 'remotegpu-host');
  const client = new ControlPlaneClient(o.controller, trusted ? tlsChannelCredentials({ caPem: trusted, expect: CONTROLLER }) : credentials.createInsecure(), {
    ...tlsChannelOptions(CONTROLLER, !trusted),
    ...reconnectChannelOptions(),
  });
  let res: RegisterResponse;
  try {
    res = await new Promise<RegisterResponse>((resolve, reject) =>
      client.register({ joinToken: o.joinToken, facts: o.facts, csrPem }, new Metadata(), { deadline: Date.now() + DEADLINE_MS }, (err, r) =>
        err ? reject(err) : resolve(r),
      ),
    );
  } finally {
    client.close();
  }
  const base = { version: 2 as const, hostId: res.hostId, controller: o.controller };
  const answer = { reportIntervalMs: res.reportIntervalMs, pendingApproval: res.pendingApproval };
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(res.hostId)) throw new RegistrationError(`the controller answered an invalid host id ${JSON.stringify(res.hostId)}`);
  if (o.insecure) {
    if (!res.hostCredential) throw new RegistrationError('the controller returned no host credential: it runs with mutual TLS; unset REMOTEGPU_GRPC_INSECURE here (both sides must agree)');
    const certified = res.certificatePem ? { caPem: res.caPem, keyPem, certPem: res.certificatePem } : { caPem: '', keyPem: '', certPem: '' };
    return { identity: { ...base, ...certified, credential: res.hostCredential }, ...answer };
  }
  const caPem = res.caPem || trusted!;
  if (caPin(caPem) !== o.caPin) throw new RegistrationError(`the controller answered with a CA (${caPin(caPem)}) other than the pinned one (${o.caPin})`);
  checkCertificate(res.hostId, res.certificatePem, caPem, keyPem);
  return { identity: { ...base, caPem, keyPem, certPem: res.certificatePem }, ...answer };
}

/**
 * A new key and certificate for `identity`, asked over `client` (mutual TLS with the current
 * certificate). Rejects with a gRPC ServiceError or RegistrationError; the caller keeps the old one.
 */
export async function renewCertificate(client: ControlPlaneClient, identity: AgentIdentity): Promise<AgentIdentity> {
  const { keyPem, csrPem } = await createCsr(identity.hostId);
  const res = await new Promise<RenewCertificateResponse>((resolve, reject) =>
    client.renewCertificate({ hostId: identity.hostId, csrPem }, new Metadata(), { deadline: Date.now() + DEADLINE_MS }, (err: ServiceError | null, r) =>
      err ? reject(err) : resolve(r),
    ),
  );
  // A renewal never changes whom the agent trusts: the answer's CA must be the pinned one.
  const caPem = identity.caPem;
  if (res.caPem && caPin(res.caPem) !== caPin(identity.caPem)) {
    throw new RegistrationError(`the controller answered the renewal with a CA (${caPin(res.caPem)}) other than the pinned one (${caPin(identity.caPem)})`);
  }
  checkCertificate(identity.hostId, res.certificatePem, caPem, keyPem);
  return { ...identity, caPem, keyPem, certPem: res.certificatePem };
}

/** Throws RegistrationError unless `certPem` names host `hostId`, certifies `keyPem` and is signed by `caPem`. */
function checkCertificate(hostId: string, certPem: string, caPem: string, keyPem: string): void {
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
    ca = new X509Certificate(caPem);
  } catch (err) {
    throw new RegistrationError(`the controller answered an unreadable certificate (${(err as Error).message})`);
  }
  const named = identityOf(cert);
  if (named?.kind !== 'host' || named.hostId !== hostId) throw new RegistrationError(`the controller issued a certificate that does not name host ${hostId}`);
  if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new RegistrationError('the controller issued a certificate for another key than the one this agent asked for');
  if (!signedBy(cert, ca)) throw new RegistrationError('the controller issued a certificate that its CA did not sign (or that is not valid now)');
}

/** When a certificate stops being valid. */
export function validUntil(certPem: string): Date {
  return new Date(new X509Certificate(certPem).validTo);
}
