import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createCa, issueKeyAndCertificate } from '../../common/pki.js';

export interface SelfSigned {
  readonly certFile: string;
  readonly keyFile: string;
  /** What a client trusts (its `ca`): the certificate itself, or the CA that issued it. */
  readonly certPem: string;
}

/**
 * Writes a certificate for 127.0.0.1 (SAN IP and DNS localhost) and its key as PEM files into
 * `dir`: self-signed with `openssl` when it is on the PATH, else from the project's PKI
 * (common/pki.ts, a CA of its own).
 */
export async function selfSignedCertificate(dir: string, options: { useOpenssl?: boolean } = {}): Promise<SelfSigned> {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  if (options.useOpenssl ?? hasOpenssl()) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
    return { certFile, keyFile, certPem: readFileSync(certFile, 'utf8') };
  }
  const { certPem, keyPem, trustPem } = await withX509();
  writeFileSync(certFile, certPem);
  writeFileSync(keyFile, keyPem, { mode: 0o600 });
  return { certFile, keyFile, certPem: trustPem };
}

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The same without openssl: the project's own PKI (a CA, and a certificate from it for 127.0.0.1). */
async function withX509(): Promise<{ certPem: string; keyPem: string; trustPem: string }> {
  const ca = await createCa('test HTTPS CA', 2);
  const leaf = await issueKeyAndCertificate({ ca, identity: { kind: 'controller' }, validityMs: 2 * 86_400_000, dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  return { certPem: leaf.certPem, keyPem: leaf.keyPem, trustPem: ca.certPem };
}
