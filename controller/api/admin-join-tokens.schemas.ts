import { z } from '@hono/zod-openapi';
import type { CreatedJoinToken, JoinTokenInfo } from '../hosts/join-tokens.js';
import { dateTime, iso, singleLine } from './schemas.js';

// Schemas and JSON views of the join tokens an admin manages, for `/admin/join-tokens`.

const YEAR_SECONDS = 31_536_000;

export const CreateJoinTokenBody = z
  .object({
    description: singleLine(z.string().trim().max(200, 'must be at most 200 characters')).optional().openapi({ example: 'rack 4, December batch' }),
    expires_in_seconds: z
      .number()
      .int('must be a whole number of seconds')
      .min(60, 'must be at least 60')
      .max(YEAR_SECONDS, `must be at most ${YEAR_SECONDS} (one year)`)
      .optional()
      .openapi({ description: 'the token expires this long after its creation; omit it (and expires_at) for a token that never expires' }),
    expires_at: z.iso
      .datetime({ offset: true, message: 'must be an RFC 3339 time, e.g. 2030-01-31T12:00:00Z' })
      .optional()
      .openapi({ description: 'when the token expires (RFC 3339, in the future, at most a year ahead); instead of expires_in_seconds' }),
    max_uses: z
      .number()
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(100_000, 'must be at most 100000')
      .optional()
      .openapi({ description: 'how many hosts may register with it; omit for unlimited' }),
    requires_approval: z
      .boolean()
      .optional()
      .default(true)
      .openapi({ description: 'hosts registered with it are pending_approval until POST /api/v1/admin/hosts/{host_id}/approve' }),
  })
  .superRefine((body, ctx) => {
    if (body.expires_in_seconds !== undefined && body.expires_at !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['expires_at'], message: 'give expires_at or expires_in_seconds, not both' });
    } else if (body.expires_at !== undefined && Date.parse(body.expires_at) <= Date.now()) {
      ctx.addIssue({ code: 'custom', path: ['expires_at'], message: 'must be in the future' });
    } else if (body.expires_at !== undefined && Date.parse(body.expires_at) > Date.now() + YEAR_SECONDS * 1000) {
      ctx.addIssue({ code: 'custom', path: ['expires_at'], message: 'must be at most one year ahead (omit it for a token that never expires)' });
    }
  });

/** When a token created from `body` expires (null: never). */
export function expiryOf(body: { expires_in_seconds?: number | undefined; expires_at?: string | undefined }): Date | null {
  if (body.expires_at !== undefined) return new Date(body.expires_at);
  if (body.expires_in_seconds !== undefined) return new Date(Date.now() + body.expires_in_seconds * 1000);
  return null;
}

export const JoinToken = z
  .object({
    id: z.string().openapi({ example: 'jt_k3x9q2m7ab' }),
    description: z.string(),
    requires_approval: z.boolean(),
    max_uses: z.number().int().nullable().openapi({ description: 'null: unlimited' }),
    uses: z.number().int().openapi({ description: 'hosts registered with it so far' }),
    expires_at: dateTime().nullable().openapi({ description: 'null: never expires' }),
    state: z.enum(['active', 'expired', 'used_up']).openapi({ description: 'active: hosts can register with it' }),
    created_at: dateTime(),
    created_by: z.number().int().nullable().openapi({ description: 'id of the admin who created it' }),
    last_used_at: dateTime().nullable(),
  })
  .openapi('JoinToken');

export const CreatedJoinTokenSchema = JoinToken.extend({
  token: z.string().openapi({
    description: 'the join token for the agent (REMOTEGPU_JOIN_TOKEN): jt_<id>.<secret>@sha256:<CA pin>; shown only in this response',
    example: 'jt_k3x9q2m7ab.Zx3…@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  }),
  ca_cert_hash: z.string().openapi({ description: 'the pin of the cluster CA the agent checks: "sha256:" + hex of its public key hash' }),
}).openapi('CreatedJoinToken');

export const JoinTokenParams = z.object({
  id: z
    .string()
    .regex(/^jt_[a-z0-9]{1,32}$/, 'must be a join token id like jt_k3x9q2m7ab')
    .openapi({ param: { name: 'id', in: 'path' }, example: 'jt_k3x9q2m7ab' }),
});

/** The API view of a join token (never the token itself). */
export function joinTokenJson(t: JoinTokenInfo) {
  return {
    id: t.id,
    description: t.description,
    requires_approval: t.requires_approval,
    max_uses: t.max_uses,
    uses: t.uses,
    expires_at: iso(t.expires_at),
    state: t.state,
    created_at: iso(t.created_at),
    created_by: t.created_by,
    last_used_at: iso(t.last_used_at),
  };
}

/** The API view of a join token just created, with the token (shown once) and the CA pin. */
export function createdJoinTokenJson(t: CreatedJoinToken) {
  return { ...joinTokenJson(t), token: t.token, ca_cert_hash: t.ca_cert_hash };
}
