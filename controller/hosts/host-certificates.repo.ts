import { sql } from 'kysely';
import type { Db } from '../db/database.js';

// The certificates issued to hosts, by fingerprint. A presented certificate counts only when it is
// in this table for that host: removing a host (cascade) revokes every certificate it was given.

export interface IssuedCertificate {
  readonly serial: string;
  readonly hostId: string;
  readonly keySha256: string;
  readonly certSha256: string;
  readonly notAfter: Date;
}

export async function insertHostCertificate(db: Db, c: IssuedCertificate): Promise<void> {
  await db
    .insertInto('host_certificates')
    .values({ serial: c.serial, host_id: c.hostId, key_sha256: c.keySha256, cert_sha256: c.certSha256, not_after: c.notAfter })
    .execute();
}

/** Whether a key was ever certified (a registration or renewal with it again is a replay). */
export async function keyWasCertified(db: Db, keySha256: string): Promise<boolean> {
  const row = await db.selectFrom('host_certificates').select('serial').where('key_sha256', '=', keySha256).executeTakeFirst();
  return row !== undefined;
}

/** Whether `certSha256` was issued to `hostId` and has not expired. */
export async function certificateIssuedTo(db: Db, hostId: string, certSha256: string): Promise<boolean> {
  const row = await db
    .selectFrom('host_certificates')
    .select('serial')
    .where('host_id', '=', hostId)
    .where('cert_sha256', '=', certSha256)
    .where('not_after', '>', sql<Date>`now()`)
    .executeTakeFirst();
  return row !== undefined;
}

export async function hostExists(db: Db, hostId: string): Promise<boolean> {
  return (await db.selectFrom('hosts').select('id').where('id', '=', hostId).executeTakeFirst()) !== undefined;
}
