import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../common/config.js';
import { identityOf, signedBy, type KeyAndCert } from '../../common/pki.js';

// Operator-supplied PKI files (REMOTEGPU_TLS_CA/_CA_KEY, REMOTEGPU_TLS_CERT/_KEY), checked once so
// that a wrong file is one clear line at start, not a TLS failure on the first agent call.

function read(variable: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${variable}="${file}": cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function parse(variable: string, file: string, text: string): { cert: X509Certificate } {
  try {
    return { cert: new X509Certificate(text) };
  } catch {
    throw new ConfigError(`invalid configuration: ${variable}="${file}": not a PEM certificate`);
  }
}

function matchingKey(variable: string, file: string, cert: X509Certificate): string {
  const pem = read(variable, file);
  let ok = false;
  try {
    const key = createPrivateKey(pem);
    ok = cert.checkPrivateKey(key) && key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  } catch {
    ok = false;
  }
  if (!ok) throw new ConfigError(`invalid configuration: ${variable}="${file}": not the ECDSA P-256 private key of its certificate`);
  return pem;
}

/** The cluster CA from files: a CA certificate and its ECDSA P-256 key. */
export function readCaFiles(files: { cert: string; key: string }): KeyAndCert {
  const certPem = read('REMOTEGPU_TLS_CA', files.cert);
  const { cert } = parse('REMOTEGPU_TLS_CA', files.cert, certPem);
  if (!cert.ca) throw new ConfigError(`invalid configuration: REMOTEGPU_TLS_CA="${files.cert}": not a CA certificate (basicConstraints CA:TRUE)`);
  return { certPem, keyPem: matchingKey('REMOTEGPU_TLS_CA_KEY', files.key, cert) };
}

/** The controller certificate from files: issued by the CA, valid now, naming spiffe://remotegpu/controller. */
export function readControllerFiles(files: { cert: string; key: string }, ca: KeyAndCert): KeyAndCert {
  const certPem = read('REMOTEGPU_TLS_CERT', files.cert);
  const { cert } = parse('REMOTEGPU_TLS_CERT', files.cert, certPem);
  if (!signedBy(cert, new X509Certificate(ca.certPem))) {
    throw new ConfigError(`invalid configuration: REMOTEGPU_TLS_CERT="${files.cert}": not issued by REMOTEGPU_TLS_CA, or not valid now`);
  }
  if (identityOf(cert)?.kind !== 'controller') {
    throw new ConfigError(`invalid configuration: REMOTEGPU_TLS_CERT="${files.cert}": needs the subject alternative name URI:spiffe://remotegpu/controller (agents check it)`);
  }
  return { certPem, keyPem: matchingKey('REMOTEGPU_TLS_KEY', files.key, cert) };
}
