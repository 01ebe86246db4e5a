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

/** Whether `certSha256` is the newest certificate issued to `hostId` (only that one may renew). */
export async function isNewestCertificate(db: Db, hostId: string, certSha256: string): Promise<boolean> {
  const row = await db
    .selectFrom('host_certificates')
    .select('cert_sha256')
    .where('host_id', '=', hostId)
    .orderBy('issued_at', 'desc')
    .orderBy('serial', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.cert_sha256 === certSha256;
}

/**
 * Ends every certificate of `hostId` except `keepSha256` within `graceSeconds` (the agent switches
 * to its renewed certificate at once; the grace covers calls already under way). A stolen older key
 * stops working then, whatever its own expiry.
 */
export async function supersedeCertificates(db: Db, hostId: string, keepSha256: string, graceSeconds: number): Promise<void> {
  await db
    .updateTable('host_certificates')
    .set({ not_after: sql<Date>`least(not_after, now() + make_interval(secs => ${graceSeconds}))` })
    .where('host_id', '=', hostId)
    .where('cert_sha256', '<>', keepSha256)
    .execute();
}

export async function hostExists(db: Db, hostId: string): Promise<boolean> {
  return (await db.selectFrom('hosts').select('id').where('id', '=', hostId).executeTakeFirst()) !== undefined;
}
