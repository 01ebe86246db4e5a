import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls, { type DetailedPeerCertificate } from 'node:tls';
import { caPin } from '../common/pki.js';

// The agent's first contact with the controller. Before it sends its join token anywhere, it opens
// a TLS connection to REMOTEGPU_CONTROLLER without trusting anything, takes the certificate chain
// the controller presents (leaf + cluster CA), and looks for the CA whose public key hash the join
// token pins and that really signed the leaf. That CA becomes the only trust root of every later
// gRPC connection; a controller with another CA is refused, and the token never reaches it.

/** Why the controller cannot be trusted ('untrusted') or not be checked now ('unreachable'). */
export class ControllerTrustError extends Error {
  constructor(
    message: string,
    readonly kind: 'untrusted' | 'unreachable',
  ) {
    super(message);
    this.name = 'ControllerTrustError';
  }
}

/** HOST:PORT or [IPv6]:PORT → host and port. */
export function splitHostPort(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) throw new Error(`expected HOST:PORT, got ${JSON.stringify(address)}`);
  return { host: m[1]!, port: Number(m[2]) };
}

/**
 * Connects to the controller at `address` and returns the PEM of the CA in its chain whose public
 * key hash is `pin` ("sha256:<hex>"). Rejects with ControllerTrustError.
 */
export async function pinnedControllerCa(address: string, pin: string, timeoutMs = 10_000): Promise<string> {
  return pinnedCa(address, await presentedChain(address, timeoutMs), pin);
}

/** The certificate chain a TLS server presents, leaf first, without verifying anything. */
export function presentedChain(address: string, timeoutMs: number): Promise<X509Certificate[]> {
  const { host, port } = splitHostPort(address);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], ...(net.isIP(host) ? {} : { servername: host }) });
    const fail = (message: string) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new ControllerTrustError(message, 'unreachable'));
    };
    const timer = setTimeout(() => fail(`controller ${address} did not complete a TLS handshake within ${timeoutMs / 1000} s`), timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const chain = walkChain(socket.getPeerCertificate(true));
      socket.destroy();
      resolve(chain);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => fail(connectError(address, err)));
  });
}

function connectError(address: string, err: NodeJS.ErrnoException): string {
  // OpenSSL's messages span lines and name source files: its reason code says enough.
  const reason = err.code ?? err.message.split('\n')[0];
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|ECONNRESET/i.test(reason ?? '')) {
    return `controller ${address} does not answer with TLS (${reason}); is it running with REMOTEGPU_GRPC_INSECURE=1? Both sides must agree`;
  }
  return `cannot reach controller ${address}: ${err.code && !err.message.includes(err.code) ? `${err.code} ` : ''}${err.message.split('\n')[0]}`;
}

function walkChain(leaf: DetailedPeerCertificate): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  for (let c: DetailedPeerCertificate | undefined = leaf; c?.raw && chain.length < 10; c = c.issuerCertificate) {
    if (seen.has(c.fingerprint256)) break; // a self-signed root names itself as its issuer
    seen.add(c.fingerprint256);
    chain.push(new X509Certificate(c.raw));
  }
  return chain;
}

function oneLine(name: string): string {
  return name.split('\n').filter(Boolean).join(', ');
}

/**
 * The PEM of the CA in `chain` (leaf first) whose key hash is `pin` and which signed the leaf
 * through the certificates in between. Throws ControllerTrustError 'untrusted' otherwise.
 */
export function pinnedCa(address: string, chain: readonly X509Certificate[], pin: string): string {
  const refuse = (what: string) =>
    new ControllerTrustError(`controller ${address} presents ${what}, but the join token pins ${pin}; refusing to register (wrong controller address, or a token from another cluster)`, 'untrusted');
  const broken = (what: string) => new ControllerTrustError(`controller ${address} presents ${what}; refusing to register`, 'untrusted');
  if (chain.length === 0) throw refuse('no certificate');
  const at = chain.findIndex((c) => caPin(c) === pin);
  if (at < 0) {
    const top = chain[chain.length - 1]!;
    const selfIssued = top.checkIssued(top) && top.verify(top.publicKey);
    throw refuse(
      selfIssued
        ? `a certificate chain whose CA is ${caPin(top)} (${oneLine(top.subject)})`
        : `a certificate chain without its CA (the last certificate, ${oneLine(top.subject)}, is issued by ${oneLine(top.issuer)})`,
    );
  }
  const ca = chain[at]!;
  if (at === 0 || !ca.ca) throw broken(`the pinned key in its serving certificate or another certificate that is not a CA (${oneLine(ca.subject)})`);
  for (let i = 0; i < at; i++) {
    const [cert, issuer] = [chain[i]!, chain[i + 1]!];
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      throw broken(`a certificate chain that the pinned CA did not sign (${oneLine(cert.subject)} is not signed by ${oneLine(issuer.subject)})`);
    }
  }
  return ca.toString();
}
