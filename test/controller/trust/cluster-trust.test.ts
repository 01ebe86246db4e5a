import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ConfigError } from '../../../common/config.js';
import { caPin, createCa, decryptSecret, identityOf, issueKeyAndCertificate } from '../../../common/pki.js';
import { loadControllerConfig } from '../../../controller/config.js';
import { ClusterTrust } from '../../../controller/trust/cluster-trust.js';
import { SECRET_KEY_FILE } from '../../../controller/trust/secret-key.js';
import { createTestDatabase, DB_TARGETS, type TestDatabase } from '../../helpers/databases.js';

// The cluster CA and the controller certificate: created once and kept encrypted, refused with a
// clear message under another secret key, or taken from the operator's files.

const logger = pino({ level: 'silent' });
const HOUR = 3_600_000;

describe.each(DB_TARGETS)('cluster trust on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('CA in the database', () => {
    let database: TestDatabase;
    let dir: string;
    beforeAll(async () => {
      database = await createTestDatabase(target);
      dir = mkdtempSync(path.join(tmpdir(), 'rgpu-trust-'));
    });
    afterAll(async () => {
      await database?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('creates the CA once (key encrypted with a key file made mode 0600), and refuses another secret key', async () => {
      const config = loadControllerConfig({ REMOTEGPU_DATA_DIR: dir });
      const first = await ClusterTrust.create({ db: database.db, config, logger });
      expect(statSync(path.join(dir, SECRET_KEY_FILE)).mode & 0o777).toBe(0o600);
      const again = await ClusterTrust.create({ db: database.db, config, logger });
      expect(again.caPin).toBe(first.caPin);
      expect(again.certificatePem).not.toBe(first.certificatePem); // a fresh controller key at every start
      expect(identityOf(first.certificatePem)).toEqual({ kind: 'controller' });

      const row = await database.db.selectFrom('cluster_ca').selectAll().executeTakeFirstOrThrow();
      expect(row.key_ciphertext).not.toContain('PRIVATE KEY');
      expect(() => decryptSecret(row.key_ciphertext, Buffer.alloc(32))).toThrow();

      const other = loadControllerConfig({ REMOTEGPU_DATA_DIR: dir, REMOTEGPU_SECRET_KEY: 'another-secret-key-0123456789abcdefghij' });
      await expect(ClusterTrust.create({ db: database.db, config: other, logger })).rejects.toThrow(/encrypted with another secret key/);
    });
  });
});

describe('operator-supplied PKI files', () => {
  let dir: string;
  let database: TestDatabase;
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-pki-files-'));
    database = await createTestDatabase(DB_TARGETS[0]!);
  });
  afterAll(async () => {
    await database?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('uses the CA and controller certificate from files, and refuses mismatched or unusable ones', async () => {
    const ca = await createCa('operator CA');
    const ctrl = await issueKeyAndCertificate({ ca, identity: { kind: 'controller' }, validityMs: HOUR });
    const env = {
      REMOTEGPU_DATA_DIR: dir,
      REMOTEGPU_SECRET_KEY: 'operator-secret-key-0123456789abcdefghij',
      REMOTEGPU_TLS_CA: file('ca.pem', ca.certPem),
      REMOTEGPU_TLS_CA_KEY: file('ca.key', ca.keyPem),
      REMOTEGPU_TLS_CERT: file('ctrl.pem', ctrl.certPem),
      REMOTEGPU_TLS_KEY: file('ctrl.key', ctrl.keyPem),
    };
    const trust = await ClusterTrust.create({ db: database.db, config: loadControllerConfig(env), logger });
    expect(trust.caPin).toBe(caPin(ca.certPem));
    expect(trust.certificatePem).toBe(ctrl.certPem);
    expect(await database.db.selectFrom('cluster_ca').selectAll().execute()).toEqual([]);

    const other = await createCa('other CA');
    const wrongKey = { ...env, REMOTEGPU_TLS_CA_KEY: file('other.key', other.keyPem) };
    await expect(ClusterTrust.create({ db: database.db, config: loadControllerConfig(wrongKey), logger })).rejects.toThrow(/REMOTEGPU_TLS_CA_KEY=.*not the ECDSA P-256 private key of its certificate/);
    const host = await issueKeyAndCertificate({ ca, identity: { kind: 'host', hostId: 'host-x' }, validityMs: HOUR });
    const notController = { ...env, REMOTEGPU_TLS_CERT: file('host.pem', host.certPem), REMOTEGPU_TLS_KEY: file('host.key', host.keyPem) };
    await expect(ClusterTrust.create({ db: database.db, config: loadControllerConfig(notController), logger })).rejects.toThrow(/spiffe:\/\/remotegpu\/controller/);
    const foreign = await issueKeyAndCertificate({ ca: other, identity: { kind: 'controller' }, validityMs: HOUR });
    const foreignCert = { ...env, REMOTEGPU_TLS_CERT: file('f.pem', foreign.certPem), REMOTEGPU_TLS_KEY: file('f.key', foreign.keyPem) };
    await expect(ClusterTrust.create({ db: database.db, config: loadControllerConfig(foreignCert), logger })).rejects.toBeInstanceOf(ConfigError);
    expect(() => loadControllerConfig({ REMOTEGPU_TLS_CA: env.REMOTEGPU_TLS_CA })).toThrow(/REMOTEGPU_TLS_CA and REMOTEGPU_TLS_CA_KEY together/);
    expect(() => loadControllerConfig({ REMOTEGPU_TLS_CERT: env.REMOTEGPU_TLS_CERT, REMOTEGPU_TLS_KEY: env.REMOTEGPU_TLS_KEY })).toThrow(/needs REMOTEGPU_TLS_CA/);
  });
});
