import type { Logger } from '../../common/logger.js';
import { createCa, decryptSecret, encryptSecret, type KeyAndCert } from '../../common/pki.js';
import type { Db } from '../db/database.js';
import { keyId } from './secret-key.js';

/**
 * The cluster CA: read from the database, or created there at the first start (concurrent first
 * starts of several replicas agree: the first insert wins). Its private key is stored encrypted
 * with the secret key (AES-256-GCM); the certificate is public.
 */
export async function loadClusterCa(db: Db, secretKey: Buffer, logger: Logger): Promise<KeyAndCert> {
  const existing = await db.selectFrom('cluster_ca').selectAll().where('id', '=', 1).executeTakeFirst();
  if (!existing) {
    const ca = await createCa('remotegpu cluster CA');
    const inserted = await db
      .insertInto('cluster_ca')
      .values({ id: 1, cert_pem: ca.certPem, key_ciphertext: encryptSecret(ca.keyPem, secretKey), key_id: keyId(secretKey) })
      .onConflict((oc) => oc.column('id').doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) > 0) {
      logger.info('created the cluster CA');
      return ca;
    }
    return loadClusterCa(db, secretKey, logger);
  }
  if (existing.key_id !== keyId(secretKey)) {
    throw new Error(
      'the cluster CA in the database was encrypted with another secret key: give this controller the same REMOTEGPU_SECRET_KEY ' +
        '(or secret.key file) as the controller that created it',
    );
  }
  try {
    return { certPem: existing.cert_pem, keyPem: decryptSecret(existing.key_ciphertext, secretKey) };
  } catch {
    throw new Error('the cluster CA key in the database does not decrypt with this secret key (altered data?)');
  }
}
