import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { AppError } from './errors.js';

// The cluster's small PKI: one CA (ECDSA P-256), certificates for the controller and for every host,
// CSRs, and the identities certificates carry. An identity is a URI in the subject alternative name:
// spiffe://remotegpu/controller or spiffe://remotegpu/host/<host id>. Private keys are PKCS#8 PEM
// strings; they never leave the process that made them, except the CA key, stored encrypted.

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const URI_PREFIX = 'spiffe://remotegpu/';
/** Certificates are valid from this long before they were issued (clock skew between machines). */
const BACKDATE_MS = 5 * 60_000;

export type Identity = { readonly kind: 'controller' } | { readonly kind: 'host'; readonly hostId: string };

export interface KeyAndCert {
  readonly keyPem: string;
  readonly certPem: string;
}

/** The SAN URI of an identity. */
export function identityUri(identity: Identity): string {
  return identity.kind === 'controller' ? `${URI_PREFIX}controller` : `${URI_PREFIX}host/${identity.hostId}`;
}

/** The identity a certificate names in its SAN URIs (the first remotegpu one), or undefined. */
export function identityOf(cert: X509Certificate | string | Buffer): Identity | undefined {
  const c = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  return identityFromSan(c.subjectAltName ?? '');
}

/** The identity in a SAN string as Node prints it ("URI:spiffe://..., DNS:..."), or undefined. */
export function identityFromSan(san: string): Identity | undefined {
  for (const part of san.split(',')) {
    const entry = part.trim();
    if (!entry.startsWith(`URI:${URI_PREFIX}`)) continue;
    const rest = entry.slice(`URI:${URI_PREFIX}`.length);
    if (rest === 'controller') return { kind: 'controller' };
    const m = /^host\/([A-Za-z0-9_-]{1,64})$/.exec(rest);
    if (m) return { kind: 'host', hostId: m[1]! };
  }
  return undefined;
}

/** A new ECDSA P-256 key pair: the private key as PKCS#8 PEM and as a webcrypto.CryptoKey pair. */
async function newKeys(): Promise<{ keys: webcrypto.CryptoKeyPair; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
  return { keys, keyPem };
}

async function importSigningKey(keyPem: string): Promise<webcrypto.CryptoKey> {
  const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']);
}

/** PEM text ending in a newline, so that PEMs concatenate into a valid chain. */
function pem(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}

function serial(): string {
  // Positive 128-bit serial (first bit clear).
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

/** A new self-signed cluster CA. */
export async function createCa(commonName: string, validityDays = 3650): Promise<KeyAndCert> {
  const { keys, keyPem } = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + validityDays * 86_400_000),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { keyPem, certPem: pem(cert.toString('pem')) };
}

/** A new key and a CSR for it (self-signed by the key: proof of possession). */
export async function createCsr(commonName: string): Promise<{ keyPem: string; csrPem: string }> {
  const { keys, keyPem } = await newKeys();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${commonName}`, keys, signingAlgorithm: ALG });
  return { keyPem, csrPem: pem(csr.toString('pem')) };
}

export interface ParsedCsr {
  readonly csr: x509.Pkcs10CertificateRequest;
  /** sha256 (hex) of the requested public key's SubjectPublicKeyInfo. */
  readonly keySha256: string;
}

/** Parses a CSR and checks its signature. Throws AppError invalid_argument when unusable. */
export async function readCsr(csrPem: string): Promise<ParsedCsr> {
  if (!csrPem || csrPem.length > 16_384) throw new AppError('invalid_argument', 'csr_pem is required (a PEM certificate signing request, at most 16 KiB)');
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    throw new AppError('invalid_argument', 'csr_pem is not a PEM certificate signing request');
  }
  const alg = csr.publicKey.algorithm as webcrypto.EcKeyAlgorithm;
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') throw new AppError('invalid_argument', 'the CSR key must be ECDSA P-256');
  if (!(await csr.verify())) throw new AppError('invalid_argument', 'the CSR signature does not verify (it must be signed by the requested key)');
  return { csr, keySha256: ecKeySha256(Buffer.from(csr.publicKey.rawData)) };
}

export interface IssueRequest {
  readonly ca: KeyAndCert;
  /** The key to certify: a parsed CSR, or (for the controller's own certificate) a public key PEM. */
  readonly publicKey: x509.PublicKey | webcrypto.CryptoKey;
  readonly identity: Identity;
  readonly validityMs: number;
  /** Extra names for standard hostname checks (the controller's serving certificate). */
  readonly dnsNames?: readonly string[];
  readonly ips?: readonly string[];
}

/** A certificate for `identity`, signed by the CA, for both TLS server and client use. */
export async function issueCertificate(req: IssueRequest): Promise<{ certPem: string; serial: string; notAfter: Date }> {
  const caCert = new x509.X509Certificate(req.ca.certPem);
  const now = Date.now();
  const notAfter = new Date(now + req.validityMs);
  const sn = serial();
  const names: x509.JsonGeneralName[] = [{ type: 'url', value: identityUri(req.identity) }];
  for (const dns of req.dnsNames ?? []) names.push({ type: 'dns', value: dns });
  for (const ip of req.ips ?? []) names.push({ type: 'ip', value: ip });
  const cn = req.identity.kind === 'controller' ? 'remotegpu-controller' : req.identity.hostId;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: sn,
    subject: `CN=${cn}`,
    issuer: caCert.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter,
    signingKey: await importSigningKey(req.ca.keyPem),
    publicKey: req.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(names),
    ],
  });
  return { certPem: pem(cert.toString('pem')), serial: sn, notAfter };
}

/** A new key and a certificate for it, both made here (the controller's own certificate). */
export async function issueKeyAndCertificate(req: Omit<IssueRequest, 'publicKey'>): Promise<KeyAndCert & { notAfter: Date }> {
  const { keys, keyPem } = await newKeys();
  const { certPem, notAfter } = await issueCertificate({ ...req, publicKey: keys.publicKey });
  return { keyPem, certPem, notAfter };
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * sha256 (hex) of an EC public key in a canonical form (its x and y coordinates), so that one key
 * has one hash however its point is encoded (compressed or not).
 */
export function ecKeySha256(spkiDer: Buffer): string {
  const jwk = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' }).export({ format: 'jwk' });
  return sha256Hex(`${jwk.crv}.${jwk.x}.${jwk.y}`);
}

/** sha256 (hex) of a certificate's SubjectPublicKeyInfo DER. */
export function publicKeySha256(cert: X509Certificate | string | Buffer): string {
  const c = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  return sha256Hex(c.publicKey.export({ type: 'spki', format: 'der' }));
}

/** The pin of a CA as join tokens carry it: "sha256:" + hex of its SubjectPublicKeyInfo hash. */
export function caPin(caCert: X509Certificate | string | Buffer): string {
  return `sha256:${publicKeySha256(caCert)}`;
}

/** sha256 (hex) of a certificate's DER encoding (its fingerprint). */
export function certSha256(cert: X509Certificate | string | Buffer): string {
  const c = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  return sha256Hex(c.raw);
}

/**
 * Whether `cert` was signed by `ca` and is valid at `now`. (TLS does this on every handshake; this is
 * for certificates read from files or from the wire outside a handshake.)
 */
export function signedBy(cert: X509Certificate, ca: X509Certificate, now = new Date()): boolean {
  return cert.checkIssued(ca) && cert.verify(ca.publicKey) && new Date(cert.validFrom) <= now && now <= new Date(cert.validTo);
}

/** When a certificate should be renewed: after two thirds of its lifetime. */
export function renewAt(certPem: string): Date {
  const c = new X509Certificate(certPem);
  const from = new Date(c.validFrom).getTime() + BACKDATE_MS;
  const to = new Date(c.validTo).getTime();
  return new Date(from + ((to - from) * 2) / 3);
}

/** AES-256-GCM encryption of a private key PEM; the result is base64 of iv | tag | ciphertext. */
export function encryptSecret(plain: string, key: Buffer): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64');
}

/** Decrypts encryptSecret's output; throws when the key is wrong or the data was altered. */
export function decryptSecret(sealed: string, key: Buffer): string {
  const raw = Buffer.from(sealed, 'base64');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
}
