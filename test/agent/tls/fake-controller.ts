import { ServerCredentials, status as GrpcStatus } from '@grpc/grpc-js';
import { bearerFromMetadata } from '../../../common/grpc.js';
import { ReloadableServerCredentials, peerOf } from '../../../common/grpc-tls.js';
import { certSha256, createCa, readCsr, type KeyAndCert } from '../../../common/pki.js';
import { ControlPlaneService, type ControlPlaneServer } from '../../../gen/remotegpu/v1/control_plane.js';
import { certify, material, serve } from './fixtures.js';

// A tiny ControlPlane over real TLS for the agent's reporter tests: Register checks the join token
// and the CSR and issues a short-lived host certificate, ReportStatus records who reported with
// which certificate, RenewCertificate issues a new certificate to the host that presents its
// current one. Answers can be switched to errors.

export const JOIN_SECRET = 'fake-join-secret-0123456789';

export interface Seen {
  /** "host-x" or "none" (no verified client certificate). */
  readonly identity: string;
  /** Fingerprint of the client certificate presented. */
  readonly cert: string;
  readonly atMs: number;
}

export interface FakeControllerOptions {
  readonly hostId?: string;
  /** Validity of issued host certificates. */
  readonly validityMs: number;
  readonly pendingApproval?: boolean;
  /** A CA to serve with (default: a new one). */
  readonly ca?: KeyAndCert;
  /** Plaintext (REMOTEGPU_GRPC_INSECURE=1): Register hands out a bearer credential, reports carry it. */
  readonly insecure?: boolean;
  /** Where to listen (default: 127.0.0.1, a free port). */
  readonly bind?: { host?: string; port?: number };
}

const CREDENTIAL = 'fake-host-credential-0123456789';

export async function startFakeController(options: FakeControllerOptions) {
  const ca = options.ca ?? (await createCa('fake cluster CA'));
  const hostId = options.hostId ?? 'host-t1';
  const state = {
    registers: 0,
    renewals: 0,
    reports: [] as Seen[],
    issued: [] as string[],
    /** When set, ReportStatus answers this error. */
    reportError: undefined as { code: GrpcStatus; details: string } | undefined,
    /** When set, RenewCertificate answers this error. */
    renewError: undefined as { code: GrpcStatus; details: string } | undefined,
    /** When set, RenewCertificate issues from this CA and names it in its answer (a controller swapping the CA). */
    renewCa: undefined as KeyAndCert | undefined,
  };
  const issue = async (csrPem: string) => {
    const certPem = await certify(ca, csrPem, { kind: 'host', hostId }, options.validityMs);
    state.issued.push(certPem);
    return certPem;
  };
  const impl: ControlPlaneServer = {
    register: (call, cb) => {
      if (call.request.joinToken !== JOIN_SECRET) return cb({ code: GrpcStatus.UNAUTHENTICATED, details: 'unknown join token' });
      state.registers++;
      readCsr(call.request.csrPem)
        .then(() => issue(call.request.csrPem))
        .then(
          (certificatePem) =>
            cb(null, { hostId, hostCredential: options.insecure ? CREDENTIAL : '', reportIntervalMs: 0, certificatePem, caPem: ca.certPem, pendingApproval: options.pendingApproval ?? false }),
          (err: Error) => cb({ code: GrpcStatus.INVALID_ARGUMENT, details: err.message }),
        );
    },
    reportStatus: (call, cb) => {
      const peer = peerOf(call);
      const bearer = options.insecure && bearerFromMetadata(call.metadata) === CREDENTIAL;
      const identity = peer?.identity?.kind === 'host' ? peer.identity.hostId : bearer ? hostId : 'none';
      state.reports.push({ identity, cert: peer ? certSha256(peer.cert) : '', atMs: Date.now() });
      if (state.reportError) return cb(state.reportError);
      if (identity !== hostId) return cb({ code: GrpcStatus.UNAUTHENTICATED, details: 'a host certificate is required' });
      cb(null, { reportIntervalMs: 0 });
    },
    renewCertificate: (call, cb) => {
      const peer = peerOf(call);
      if (peer?.identity?.kind !== 'host' || peer.identity.hostId !== call.request.hostId) return cb({ code: GrpcStatus.UNAUTHENTICATED, details: 'renewal needs the current certificate' });
      if (state.renewError) return cb(state.renewError);
      state.renewals++;
      const from = state.renewCa ?? ca;
      certify(from, call.request.csrPem, { kind: 'host', hostId }, options.validityMs).then(
        (certificatePem) => {
          state.issued.push(certificatePem);
          cb(null, { certificatePem, caPem: from.certPem });
        },
        (err: Error) => cb({ code: GrpcStatus.INVALID_ARGUMENT, details: err.message }),
      );
    },
  };
  const creds = options.insecure ? ServerCredentials.createInsecure() : new ReloadableServerCredentials(await material(ca, { kind: 'controller' }, { withCa: true }), false);
  const served = await serve(ControlPlaneService, impl, creds, options.bind);
  return { ...served, ca, hostId, state };
}

export type FakeController = Awaited<ReturnType<typeof startFakeController>>;
