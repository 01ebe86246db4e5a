import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../common/logger.js';

export const SECRET_KEY_FILE = 'secret.key';

/**
 * The controller's secret key (32 bytes): it encrypts the cluster CA's private key in the database
 * and derives plaintext-mode host credentials. From REMOTEGPU_SECRET_KEY (any string of 32+
 * characters, hashed to 32 bytes) or from `<dataDir>/secret.key`, created (mode 0600) at the first
 * start. Replicas sharing one PostgreSQL must share the key: set REMOTEGPU_SECRET_KEY on each.
 */
export async function loadSecretKey(options: { secretKey: string | undefined; dataDir: string; logger: Logger }): Promise<Buffer> {
  if (options.secretKey) return derive(options.secretKey);
  const file = path.resolve(options.dataDir, SECRET_KEY_FILE);
  try {
    return derive((await readFile(file, 'utf8')).trim());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read the secret key file ${file}: ${(err as Error).message}`);
  }
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const value = randomBytes(32).toString('base64url');
  // 'wx': never overwrite a key another process created meanwhile.
  await writeFile(file, `${value}\n`, { mode: 0o600, flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  options.logger.info({ file }, 'created the controller secret key file (back it up: it decrypts the cluster CA key)');
  return derive((await readFile(file, 'utf8')).trim());
}

function derive(text: string): Buffer {
  if (text.length < 32) throw new Error('the secret key must have at least 32 characters');
  return createHash('sha256').update(`remotegpu secret key\0${text}`).digest();
}

/** A short public id of a key (to tell "wrong key" from "corrupt data"); reveals nothing usable. */
export function keyId(key: Buffer): string {
  return createHash('sha256').update('remotegpu key id\0').update(key).digest('hex').slice(0, 16);
}
