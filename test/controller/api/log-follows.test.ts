import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningController } from '../../../controller/server.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { startTestController, type TestController } from '../../helpers/controller.js';
import { startTestAgent, type TestAgent } from '../../helpers/test-agent.js';
import { restCaller, waitUntil } from '../../helpers/rest.js';

// Open log follows (issue 11, items 3 and 7), on a real controller over HTTP with an in-process
// test agent over loopback gRPC: a follow ends with `event: end` and the reason when its token is
// revoked or expires, its user is disabled, or its environment is deleted; a user has at most
// REMOTEGPU_MAX_FOLLOWS_PER_USER open follows (429 beyond); one poll serves every follow.

const ADMIN = 'follows-admin-token-0123456789ab';
const JOIN = 'follows-join-token-0123456789abc';
const MAX_FOLLOWS = 2;

/** An open SSE response, read in the background. */
interface Follow {
  text(): string;
  /** Resolves when the server ends the response. */
  readonly closed: Promise<void>;
  abort(): void;
}

describe.each(DB_TARGETS)('log follows on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('controller + test agent', () => {
    let platform: TestController | undefined;
    let controller: RunningController;
    let agent: TestAgent;

    const call = restCaller(() => controller.httpUrl);
    const waitFor = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000, detail?: () => string) => waitUntil(what, check, timeoutMs, detail, 100);
    const follows = () => controller.services.environmentLogs.follows.stats();

    /** A user with one token (and its id). */
    const user = async (name: string) => {
      const u = await call('POST', '/api/v1/admin/users', ADMIN, { name });
      const t = await call('POST', `/api/v1/admin/users/${u.body.data.id}/tokens`, ADMIN, { name: 't' });
      return { id: u.body.data.id as number, token: t.body.data.token as string, tokenId: t.body.data.id as number };
    };
    const createEnv = async (token: string, name: string) => {
      const res = await call('POST', '/api/v1/environments', token, { name, image: 'img:1', cpu: 1, memory: 2 ** 28, gpu: 0, storage: 2 ** 30 });
      expect(res.status).toBe(201);
      const envId = res.body.data.env_id as string;
      await waitFor('running', async () => (await call('GET', `/api/v1/environments/${envId}`, token)).body.data.status === 'running');
      return envId;
    };
    const openFollow = async (token: string, envId: string): Promise<Follow> => {
      const abort = new AbortController();
      const res = await fetch(`${controller.httpUrl}/api/v1/environments/${envId}/logs?follow=true&lines=1`, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
      expect(res.status).toBe(200);
      let text = '';
      const reader = res.body!.getReader();
      const closed = (async () => {
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            text += Buffer.from(value).toString();
          }
        } catch {
          // aborted by the test
        }
      })();
      return { text: () => text, closed, abort: () => abort.abort() };
    };

    beforeAll(async () => {
      platform = await startTestController(target, { admin: ADMIN, join: JOIN }, { REMOTEGPU_MAX_FOLLOWS_PER_USER: String(MAX_FOLLOWS), REMOTEGPU_AGENT_TIMEOUT_MS: '30000' });
      controller = platform.controller;
      agent = await startTestAgent({ ...platform.agentOptions, gpus: 4 });
      agent.startReporting(200);
    }, 60_000);

    afterAll(async () => {
      await agent?.close();
      await platform?.close();
    });

    it('ends a follow whose token is revoked with event: end "token revoked", and frees its place', async () => {
      const alice = await user('alice');
      const envId = await createEnv(alice.token, 'a');
      const f = await openFollow(alice.token, envId);
      await waitFor('agent follower', () => agent.followerCount(envId) === 1);
      agent.emitLog(envId, 'before revoke');
      await waitFor('a line', () => f.text().includes('before revoke'));
      expect((await call('DELETE', `/api/v1/admin/users/${alice.id}/tokens/${alice.tokenId}`, ADMIN)).status).toBe(204);
      await f.closed; // the server ends the response by itself
      expect(f.text()).toMatch(/event: end\ndata: token revoked\n\n$/);
      await waitFor('agent stream cancelled', () => agent.followerCount(envId) === 0);
      expect(follows().follows).toBe(0);
    });

    it('ends a follow whose client stopped reading when its token is revoked, and drops the connection', async () => {
      const gina = await user('gina');
      const envId = await createEnv(gina.token, 'g');
      const res = await fetch(`${controller.httpUrl}/api/v1/environments/${envId}/logs?follow=true&lines=1`, { headers: { authorization: `Bearer ${gina.token}` } });
      const reader = res.body!.getReader();
      await reader.read(); // one entry, then the client reads nothing
      await waitFor('agent follower', () => agent.followerCount(envId) === 1);
      // More than the socket buffers on loopback hold (tens of MiB), so the follow's own buffer fills.
      const line = 'z'.repeat(16_000);
      for (let i = 0; i < 4000; i++) agent.emitLog(envId, line);
      await waitFor('the follow buffer full (1 Mi characters)', () => follows().bufferedChars >= 2 ** 20, 30_000, () => JSON.stringify(follows()));
      await new Promise((r) => setTimeout(r, 500));
      expect(follows().bufferedChars).toBeLessThan(2 ** 20 + 16_000);
      expect((await call('DELETE', `/api/v1/admin/users/${gina.id}/tokens/${gina.tokenId}`, ADMIN)).status).toBe(204);
      await waitFor('the follow ended without the client', () => follows().follows === 0, 20_000);
      await waitFor('agent stream cancelled', () => agent.followerCount(envId) === 0);
      // The connection was dropped: reading what the socket still holds ends (or fails) instead of hanging.
      let bytes = 0;
      const ended = await (async () => {
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return 'ended';
            bytes += value.length;
          }
        } catch {
          return 'dropped';
        }
      })();
      console.log(`stalled client after revoke: connection ${ended} after ${(bytes / 2 ** 20).toFixed(1)} MiB left in the socket`);
      expect(ended).toMatch(/ended|dropped/);
    }, 60_000);

    it('ends a follow whose token expired with "token expired"', async () => {
      const bob = await user('bob');
      const envId = await createEnv(bob.token, 'b');
      const f = await openFollow(bob.token, envId);
      await waitFor('agent follower', () => agent.followerCount(envId) === 1);
      await controller.database.db.updateTable('api_tokens').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', bob.tokenId).execute();
      await f.closed;
      expect(f.text()).toMatch(/event: end\ndata: token expired\n\n$/);
    });

    it('ends a follow of a user who is disabled with "user disabled"', async () => {
      const carol = await user('carol');
      const envId = await createEnv(carol.token, 'c');
      const f = await openFollow(carol.token, envId);
      await waitFor('agent follower', () => agent.followerCount(envId) === 1);
      expect((await call('DELETE', `/api/v1/admin/users/${carol.id}`, ADMIN)).status).toBe(204);
      await f.closed;
      expect(f.text()).toMatch(/event: end\ndata: user disabled\n\n$/);
    });

    it('ends with "environment deleted" after the delete event when the environment is deleted', async () => {
      const dave = await user('dave');
      const envId = await createEnv(dave.token, 'd');
      const f = await openFollow(dave.token, envId);
      await waitFor('agent follower', () => agent.followerCount(envId) === 1);
      expect((await call('DELETE', `/api/v1/environments/${envId}`, dave.token)).status).toBe(204);
      await f.closed;
      expect(f.text()).toMatch(/Delete requested\n\n(data: .*\n\n)*event: end\ndata: environment deleted\n\n$/);
    });

    it('refuses a follow over the per-user limit with 429 in the envelope; a closed follow frees its place; one poll serves every follow', async () => {
      const erin = await user('erin');
      const frank = await user('frank');
      const envA = await createEnv(erin.token, 'e1');
      const envB = await createEnv(frank.token, 'f1');
      const open = [await openFollow(erin.token, envA), await openFollow(erin.token, envA)];
      const over = await call('GET', `/api/v1/environments/${envA}/logs?follow=true`, erin.token);
      expect(over.status).toBe(429);
      expect(over.body).toEqual({ code: 42901, message: expect.stringMatching(/already follow 2 log streams.*REMOTEGPU_MAX_FOLLOWS_PER_USER=2/), data: null });
      // Other users have their own limit; plain (non-follow) reads are not counted.
      open.push(await openFollow(frank.token, envB), await openFollow(frank.token, envB));
      expect((await call('GET', `/api/v1/environments/${envA}/logs?lines=5`, erin.token)).status).toBe(200);
      await waitFor('4 follows', () => follows().follows === 4);

      // One query reads the events of every followed environment; every follower of an environment gets each event.
      const before = follows();
      expect((await call('POST', `/api/v1/environments/${envA}/stop`, erin.token)).status).toBe(200);
      expect((await call('POST', `/api/v1/environments/${envB}/stop`, frank.token)).status).toBe(200);
      await waitFor('stop events in every follow', () => open.every((f) => f.text().includes('Stop requested')), 20_000, () => open.map((f) => f.text()).join('|'));
      await new Promise((r) => setTimeout(r, 2500)); // at least one access check round
      const after = follows();
      const rounds = after.rounds - before.rounds;
      const queries = after.queries - before.queries;
      console.log(`4 follows (2 users, 2 environments): ${queries} queries in ${rounds} poll rounds (the old code: 2 per follow per round = ${8 * rounds})`);
      // At most: one event query per round, and per access check one token query and one per user.
      expect(queries).toBeLessThanOrEqual(rounds + 3 * Math.ceil(rounds / 4) + 3);

      open[0]!.abort();
      await waitFor('a place freed', () => follows().follows === 3);
      const again = await openFollow(erin.token, envA);
      await waitFor('4 follows again', () => follows().follows === 4);
      for (const f of [...open, again]) f.abort();
      await waitFor('no follow left', () => follows().follows === 0);
    });
  });
});
