import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { AppError } from '../../../common/errors.js';
import { hashSecret } from '../../../common/secrets.js';
import { JoinTokens, type JoinTokenGrant } from '../../../controller/hosts/join-tokens.js';
import { DB_TARGETS, createTestDatabase, type TestDatabase } from '../../helpers/databases.js';

// The JoinTokens service on a real database: tokens shown once and stored hashed, consume() inside
// a registration transaction (uses, expiry, wrong secrets, the bootstrap token), and exactly one
// winner when parallel registrations race for the last use.

const PIN = `sha256:${'9f86d081'.repeat(8)}`;
const BOOTSTRAP = 'bootstrap-join-token-0123456789abcdef';
const TOKEN_FORMAT = /^(jt_[a-z0-9]{10})\.([A-Za-z0-9_-]{43})@(sha256:[0-9a-f]{64})$/;

/** The secret part of a full token (what the agent presents: everything before "@"). */
const secretPart = (token: string) => token.slice(0, token.indexOf('@'));

describe.each(DB_TARGETS)('JoinTokens on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('service', () => {
    let database: TestDatabase;
    let tokens: JoinTokens;
    const logLines: string[] = [];

    const consume = (presented: string, service = tokens): Promise<JoinTokenGrant> =>
      database.db.transaction().execute((trx) => service.consume(trx, presented));
    const refusal = async (presented: string, service = tokens): Promise<AppError> => {
      const err = await consume(presented, service).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('unauthenticated');
      // The part after the id (the secret) is never echoed.
      if (presented.length > 14) expect((err as AppError).message).not.toContain(presented.slice(14));
      return err as AppError;
    };

    beforeAll(async () => {
      database = await createTestDatabase(target);
      const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
      tokens = new JoinTokens({ db: database.db, logger, bootstrapToken: BOOTSTRAP, caPin: () => PIN });
    });
    afterAll(async () => {
      await database?.close();
    });

    it('creates a token shown once: jt_<id>.<secret>@<CA pin>, stored only as the hash of its secret part', async () => {
      const created = await tokens.create({ description: 'rack 4', createdBy: null });
      const [, id, secret, pin] = TOKEN_FORMAT.exec(created.token) ?? [];
      expect(id).toBe(created.id);
      expect(pin).toBe(PIN);
      expect(created.ca_cert_hash).toBe(PIN);
      expect(created).toMatchObject({ description: 'rack 4', requires_approval: true, max_uses: null, uses: 0, expires_at: null, state: 'active', last_used_at: null });
      const row = await database.db.selectFrom('join_tokens').selectAll().where('id', '=', created.id).executeTakeFirstOrThrow();
      expect(row.secret_hash).toBe(hashSecret(secretPart(created.token)));
      expect(JSON.stringify(row)).not.toContain(secret!);
      expect(Object.keys(await tokens.get(created.id))).not.toContain('token');
    });

    it('lets a max_uses 1 token register once, then refuses it as used up', async () => {
      const created = await tokens.create({ maxUses: 1, requiresApproval: true, createdBy: null });
      expect(await consume(secretPart(created.token))).toEqual({ tokenId: created.id, requiresApproval: true });
      const after = await tokens.get(created.id);
      expect(after).toMatchObject({ uses: 1, state: 'used_up' });
      expect(after.last_used_at).toBeInstanceOf(Date);
      const err = await refusal(secretPart(created.token));
      expect(err.message).toContain(`join token ${created.id} used up (1 of 1 uses)`);
      expect((await tokens.get(created.id)).uses).toBe(1);
    });

    it('grants registrations without approval for a token created so', async () => {
      const created = await tokens.create({ requiresApproval: false, createdBy: null });
      expect(await consume(secretPart(created.token))).toEqual({ tokenId: created.id, requiresApproval: false });
      expect(await consume(secretPart(created.token))).toEqual({ tokenId: created.id, requiresApproval: false });
      expect((await tokens.get(created.id)).uses).toBe(2);
    });

    it('refuses an expired token, naming when it expired', async () => {
      const created = await tokens.create({ expiresAt: new Date(Date.now() + 3_600_000), createdBy: null });
      const past = new Date(Date.now() - 60_000);
      await database.db.updateTable('join_tokens').set({ expires_at: past }).where('id', '=', created.id).execute();
      const err = await refusal(secretPart(created.token));
      expect(err.message).toContain(`join token ${created.id} expired at ${past.toISOString()}`);
      expect(await tokens.get(created.id)).toMatchObject({ state: 'expired', uses: 0 });
    });

    it('refuses a wrong secret and an unknown id alike, without echoing the secret', async () => {
      const created = await tokens.create({ createdBy: null });
      const wrong = `${created.id}.${'A'.repeat(43)}`;
      expect((await refusal(wrong)).message).toContain(`unknown join token ${created.id}`);
      expect((await refusal(`jt_0000000000.${'B'.repeat(43)}`)).message).toContain('unknown join token jt_0000000000');
      expect((await tokens.get(created.id)).uses).toBe(0);
      // The full token (with "@sha256:...") is not what the agent presents: it is no token at all.
      expect((await refusal(created.token)).message).toMatch(/^unknown join token: neither an admin join token/);
    });

    it('accepts the bootstrap token without approval and refuses other strings', async () => {
      expect(await consume(BOOTSTRAP)).toEqual({ tokenId: null, requiresApproval: false });
      expect((await refusal('not-the-bootstrap-token-at-all')).message).toContain('nor the bootstrap token (REMOTEGPU_JOIN_TOKEN)');
      expect((await refusal('')).message).toMatch(/^missing join token/);
    });

    it('refuses non-admin tokens when no bootstrap token is configured', async () => {
      const none = new JoinTokens({ db: database.db, logger: pino({ level: 'silent' }), bootstrapToken: undefined, caPin: () => PIN });
      expect((await refusal(BOOTSTRAP, none)).message).toContain('no bootstrap token is configured');
      const created = await none.create({ createdBy: null });
      expect((await consume(secretPart(created.token), none)).tokenId).toBe(created.id);
    });

    it('deletes a token: 404 afterwards, and it registers nothing anymore', async () => {
      const created = await tokens.create({ createdBy: null });
      await tokens.delete(created.id);
      await expect(tokens.get(created.id)).rejects.toMatchObject({ code: 'not_found' });
      await expect(tokens.delete(created.id)).rejects.toMatchObject({ code: 'not_found' });
      expect((await refusal(secretPart(created.token))).message).toContain(`unknown join token ${created.id}`);
    });

    it('lists newest first with the computed state', async () => {
      const page = await tokens.list({ page: 1, pageSize: 100 });
      expect(page.total).toBe(page.items.length);
      const times = page.items.map((t) => t.created_at.getTime());
      expect([...times].sort((a, b) => b - a)).toEqual(times);
      expect(new Set(page.items.map((t) => t.state))).toEqual(new Set(['active', 'expired', 'used_up']));
      expect(page.items.every((t) => !('secret_hash' in t) && !('token' in t))).toBe(true);
    });

    it('never logs a token or its secret', async () => {
      const created = await tokens.create({ maxUses: 1, createdBy: null });
      await consume(secretPart(created.token));
      await refusal(secretPart(created.token));
      const [, , secret] = TOKEN_FORMAT.exec(created.token) ?? [];
      const logs = logLines.join('\n');
      expect(logs).toContain(created.id);
      expect(logs).not.toContain(secret!);
      expect(logs).not.toContain(BOOTSTRAP);
    });

    it('lets exactly one of 5 parallel registrations use a max_uses 1 token', async () => {
      const created = await tokens.create({ maxUses: 1, createdBy: null });
      const presented = secretPart(created.token);
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, () =>
          database.db.transaction().execute(async (trx) => {
            const grant = await tokens.consume(trx, presented);
            // Hold the row lock a moment, as a registration inserting its host would.
            await new Promise((resolve) => setTimeout(resolve, 50));
            return grant;
          }),
        ),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(refused).toHaveLength(4);
      for (const r of refused) expect((r.reason as AppError).message).toContain('used up (1 of 1 uses)');
      expect((await tokens.get(created.id)).uses).toBe(1);
    });
  });
});
