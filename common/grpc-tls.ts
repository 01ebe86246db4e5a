import { X509Certificate } from 'node:crypto';
import tls, { type PeerCertificate, type SecureContext, type SecureContextOptions } from 'node:tls';
import { credentials, ServerCredentials, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { identityFromSan, identityUri, sha256Hex, type Identity } from './pki.js';

// Mutual TLS for both gRPC directions. Servers (the controller's ControlPlane, every agent's
// AgentService) ask each client for a certificate; the handler then reads who called with
// `peerOf(call)`: an identity only when the client's chain verified against the cluster CA (and
// was valid) during the handshake. Server certificates can be replaced while serving (rotation).

export interface TlsMaterial {
  /** PEM of the cluster CA: whom to trust. */
  readonly caPem: string;
  /** PEM certificate chain presented to peers (leaf first; the CA may follow). */
  readonly certPem: string;
  readonly keyPem: string;
}

/**
 * Server credentials whose certificate can be swapped at run time (`update`). With
 * `requireClientCertificate` false a client without a certificate still gets through the handshake
 * (the controller's Register, the bootstrap); handlers check `peerOf(call)`. Until the first
 * material is set (an agent before it registered), every connection is dropped.
 */
export class ReloadableServerCredentials extends ServerCredentials {
  constructor(material: TlsMaterial | undefined, requireClientCertificate: boolean) {
    super({ requestCert: true, rejectUnauthorized: requireClientCertificate }, material ? contextOf(material) : undefined);
  }

  update(material: TlsMaterial): void {
    this.updateSecureContextOptions(contextOf(material));
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

function contextOf(m: TlsMaterial): SecureContextOptions {
  return { ca: m.caPem, cert: m.certPem, key: m.keyPem, minVersion: 'TLSv1.2' };
}

export interface Peer {
  readonly identity: Identity | undefined;
  readonly cert: X509Certificate;
}

/**
 * The verified client certificate of a call, or undefined when the client presented none or one
 * that does not chain to the cluster CA (grpc-js exposes the peer certificate only when the
 * handshake verified it).
 */
export function peerOf(call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } }): Peer | undefined {
  const peer = call.getAuthContext().sslPeerCertificate;
  if (!peer?.raw) return undefined;
  // Parsing a certificate costs more than the rest of a report's handling together: every call of
  // a connection presents the same bytes, so the parsed peer is kept, keyed by those bytes (the
  // handshake verified them; the key is the whole certificate, never an address).
  const key = peer.raw.toString('base64');
  const known = parsedPeers.get(key);
  if (known) return known;
  const cert = new X509Certificate(peer.raw);
  const parsed = { identity: identityFromSan(cert.subjectAltName ?? ''), cert };
  if (parsedPeers.size >= PARSED_PEERS_MAX) parsedPeers.delete(parsedPeers.keys().next().value!);
  parsedPeers.set(key, parsed);
  return parsed;
}

/** Parsed peer certificates by their DER bytes (base64), oldest first; at most PARSED_PEERS_MAX. */
const parsedPeers = new Map<string, Peer>();
const PARSED_PEERS_MAX = 16_384;

export function describeIdentity(identity: Identity | undefined): string {
  if (!identity) return 'no remotegpu identity';
  return identity.kind === 'controller' ? 'the controller' : `host ${identity.hostId}`;
}

function sameIdentity(a: Identity | undefined, b: Identity): boolean {
  return a !== undefined && identityUri(a) === identityUri(b);
}

/**
 * Client credentials trusting only the cluster CA, presenting `key`/`cert` when given, and
 * accepting only a server whose certificate names `expect` (a host id for agents). For the
 * controller a certificate valid for the dialled host name (an operator-supplied one) is accepted
 * too.
 */
export function tlsChannelCredentials(options: {
  caPem: string;
  keyPem?: string;
  certPem?: string;
  expect: Identity;
  /** When given, the server certificate's sha256 (hex of its DER) must be one of these. */
  fingerprints?: readonly string[];
}): ChannelCredentials {
  const { caPem, keyPem, certPem, expect, fingerprints } = options;
  return credentials.createSsl(Buffer.from(caPem), keyPem ? Buffer.from(keyPem) : null, certPem ? Buffer.from(certPem) : null, {
    checkServerIdentity: serverCheck(expect, fingerprints),
  });
}

/**
 * tlsChannelCredentials over a secure context made once (`tls.createSecureContext` of the CA, key
 * and certificate) and shared by many channels: a context costs about 33 KB, so a controller
 * calling 5,000 agents keeps one instead of 5,000. Each channel still checks its own server.
 */
export function sharedContextCredentials(context: SecureContext, expect: Identity, fingerprints?: readonly string[]): ChannelCredentials {
  return credentials.createFromSecureContext(context, { checkServerIdentity: serverCheck(expect, fingerprints) });
}

/** The server must present `expect`'s identity and, when given, one of `fingerprints`. */
function serverCheck(expect: Identity, fingerprints: readonly string[] | undefined) {
  return (hostname: string, cert: PeerCertificate): Error | undefined => {
    const found = identityFromSan(cert.subjectaltname ?? '');
    if (fingerprints && !(cert.raw && fingerprints.includes(sha256Hex(cert.raw)))) {
      return new Error(`the server presents a certificate for ${describeIdentity(found)} that was not issued to it or was revoked`);
    }
    if (sameIdentity(found, expect)) return undefined;
    if (expect.kind === 'controller' && !found && tls.checkServerIdentity(hostname, cert) === undefined) return undefined;
    return new Error(`the server presents a certificate for ${describeIdentity(found)}, expected ${describeIdentity(expect)}`);
  };
}

/**
 * Channel options for dialling `expect` over TLS: the TLS server name is the identity, not the
 * address (both sides are checked by the identity in the certificate, and an IP address is not a
 * valid TLS server name). None in plaintext mode.
 */
export function tlsChannelOptions(expect: Identity, insecure = false): ChannelOptions {
  if (insecure) return {};
  return { 'grpc.ssl_target_name_override': expect.kind === 'controller' ? 'controller.remotegpu' : `${expect.hostId}.hosts.remotegpu` };
}
