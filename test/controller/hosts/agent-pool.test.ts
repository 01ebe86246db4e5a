import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { AppError } from '../../../common/errors.js';
import { createLogger } from '../../../common/logger.js';
import { GrpcAgentPool } from '../../../controller/hosts/agent-pool.js';
import type { AgentEnvSpec, AgentLogLine } from '../../../controller/hosts/types.js';
import { DB_TARGETS } from '../../helpers/databases.js';
import { startTestAgent, testSpecHash, type TestAgent } from '../../helpers/test-agent.js';
import { specToProto } from '../../../controller/hosts/convert.js';
import { startHostsFixture, type HostsFixture } from './fixture.js';

// The controller's AgentPool against the test agent over real gRPC on loopback.

function spec(envId: string, overrides: Partial<AgentEnvSpec> = {}): AgentEnvSpec {
  return {
    envId,
    image: 'remotegpu/devbox:1',
    cpuCores: 4,
    memoryBytes: 16 * 2 ** 30,
    gpuUuids: [],
    storageBytes: 50 * 2 ** 30,
    dataPath: '/root/workspace',
    ports: [{ name: 'ssh', containerPort: 22, hostPort: 30001 }],
    sshAuthorizedKeys: ['ssh-ed25519 AAAA test'],
    mounts: [],
    env: {},
    labels: {},
    jupyterToken: 'jt',
    desiredState: 'running',
    ...overrides,
  };
}

async function caught(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

describe.each(DB_TARGETS)('AgentPool on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('calls to the test agent', () => {
    let f: HostsFixture;
    let agent: TestAgent;

    beforeAll(async () => {
      f = await startHostsFixture(target);
      agent = await startTestAgent({ ...f.join, gpus: 2 });
    });
    afterAll(async () => {
      await agent?.close();
      await f?.close();
    });

    it('apply, inspect, stop, apply again, remove: a round trip with converted states', async () => {
      const api = await f.services.agents.forHost(agent.hostId);
      const gpu = agent.facts.gpus[0]!.uuid;
      const s = spec('env-rt', { gpuUuids: [gpu], env: { A: 'b' }, mounts: [{ datasetId: '7', hostPath: '/srv/d', containerPath: '/data/d', readonly: true }] });

      const applied = await api.apply(s);
      expect(applied.action).toBe('created');
      expect(applied.status).toMatchObject({ envId: 'env-rt', state: 'running', gpuUuids: [gpu], sshReady: true });
      expect(applied.status.specHash).toBe(testSpecHash(specToProto(s)));
      expect(applied.status.startedAt).toBeInstanceOf(Date);
      // The agent received the spec as sent.
      expect(agent.containers.get('env-rt')?.spec).toMatchObject({ image: 'remotegpu/devbox:1', cpuCores: 4, env: { A: 'b' }, gpuUuids: [gpu] });

      expect((await api.apply(s)).action).toBe('none');
      expect((await api.inspect('env-rt')).state).toBe('running');

      const stopped = await api.stop('env-rt', 5);
      expect(stopped?.state).toBe('exited');
      expect((await api.apply({ ...s, desiredState: 'stopped' })).action).toBe('none');
      expect((await api.apply(s)).action).toBe('started');

      expect(await api.remove('env-rt')).toBe(true);
      expect(await api.remove('env-rt')).toBe(false);
      expect((await api.inspect('env-rt')).state).toBe('absent');
      expect(await api.stop('env-rt')).toMatchObject({ state: 'absent' });
    });

    it('reuses one client per host', async () => {
      const a = await f.services.agents.forHost(agent.hostId);
      const b = await f.services.agents.forHost(agent.hostId);
      expect(a).toBe(b);
    });

    it('logs: the tail, then followed lines; aborting cancels the stream on the agent', async () => {
      const api = await f.services.agents.forHost(agent.hostId);
      await api.apply(spec('env-logs'));
      for (let i = 1; i <= 5; i++) agent.emitLog('env-logs', `line ${i}`, i === 5 ? 'stderr' : 'stdout');

      const tail: AgentLogLine[] = [];
      for await (const line of api.logs('env-logs', { tail: 2, follow: false, signal: new AbortController().signal })) tail.push(line);
      expect(tail.map((l) => [l.text, l.stream])).toEqual([
        ['line 4', 'stdout'],
        ['line 5', 'stderr'],
      ]);
      expect(tail[0]!.at).toBeInstanceOf(Date);

      const before = agent.cancelledStreams;
      const abort = new AbortController();
      const seen: string[] = [];
      const reading = (async () => {
        for await (const line of api.logs('env-logs', { tail: 1, follow: true, signal: abort.signal })) {
          seen.push(line.text);
          if (line.text === 'line 5') {
            // The follower is registered once the tail was sent; new lines arrive as they are written.
            agent.emitLog('env-logs', 'line 6');
          }
          if (line.text === 'line 6') abort.abort();
        }
      })();
      await reading; // ends without an error once aborted
      expect(seen).toEqual(['line 5', 'line 6']);
      await agent.waitForCancelledStreams(before + 1);
      expect(agent.followerCount('env-logs')).toBe(0);
    });

    it('logs: a consumer that stops iterating cancels the stream too', async () => {
      const api = await f.services.agents.forHost(agent.hostId);
      await api.apply(spec('env-break'));
      agent.emitLog('env-break', 'only line');
      const before = agent.cancelledStreams;
      for await (const line of api.logs('env-break', { tail: 10, follow: true, signal: new AbortController().signal })) {
        expect(line.text).toBe('only line');
        break;
      }
      await agent.waitForCancelledStreams(before + 1);
      expect(agent.followerCount('env-break')).toBe(0);
    });

    it('logs of an unknown environment fail with not_found carrying the agent message', async () => {
      const api = await f.services.agents.forHost(agent.hostId);
      const err = await caught(
        (async () => {
          for await (const _ of api.logs('env-none', { tail: 1, follow: false, signal: new AbortController().signal })) void _;
        })(),
      );
      expect(err.code).toBe('not_found');
      expect(err.message).toBe(`agent on ${agent.hostId}: no container for environment env-none`);
    });

    it('maps agent errors: a status keeps its code and message; a hung call hits the deadline as unavailable', async () => {
      const api = await f.services.agents.forHost(agent.hostId);
      agent.setFailure('apply', { code: status.RESOURCE_EXHAUSTED, details: 'disk full' });
      try {
        const err = await caught(api.apply(spec('env-err')));
        expect(err.code).toBe('no_capacity');
        expect(err.message).toBe(`agent on ${agent.hostId}: disk full`);
      } finally {
        agent.setFailure('apply', undefined);
      }

      const pool = new GrpcAgentPool({ db: f.db, logger: createLogger({ name: 't', level: 'silent' }), config: { agentTimeoutMs: 200 }, trust: f.services.trust });
      agent.setFailure('inspect', 'hang');
      try {
        const err = await caught((await pool.forHost(agent.hostId)).inspect('env-x'));
        expect(err.code).toBe('unavailable');
        expect(err.message).toMatch(new RegExp(`^agent on ${agent.hostId} unreachable: `));
      } finally {
        agent.setFailure('inspect', undefined);
        pool.close();
      }
    });

    it('an unknown host is not_found; an unreachable agent is unavailable', async () => {
      expect((await caught(f.services.agents.forHost('host-nope000000'))).code).toBe('not_found');

      const down = await startTestAgent({ ...f.join });
      await down.close();
      const api = await f.services.agents.forHost(down.hostId);
      const err = await caught(api.inspect('env-1'));
      expect(err.code).toBe('unavailable');
      expect(err.message).toMatch(new RegExp(`^agent on ${down.hostId} unreachable: `));
    });

    it('reconnects after the controller certificate is renewed, and refuses an agent presenting another host id', async () => {
      const moved = await startTestAgent({ ...f.join });
      const first = await f.services.agents.forHost(moved.hostId);
      expect((await first.inspect('env-1')).state).toBe('absent');

      // A renewed controller certificate: the next call gets a new client, presenting the new certificate.
      await f.services.trust.renew();
      const second = await f.services.agents.forHost(moved.hostId);
      expect(second).not.toBe(first);
      expect((await second.inspect('env-1')).state).toBe('absent');
      expect(moved.calls.inspect).toBe(2);

      // The host's address now leads to another registered host: its certificate names another host
      // id, so the controller refuses it during the handshake and never sends the call.
      const impostor = await startTestAgent({ ...f.join });
      await f.db.updateTable('hosts').set({ agent_address: impostor.address }).where('id', '=', moved.hostId).execute();
      const third = await f.services.agents.forHost(moved.hostId);
      expect(third).not.toBe(second);
      const refused = await caught(third.inspect('env-1'));
      expect(refused.code).toBe('unavailable');
      expect(impostor.calls.inspect).toBe(0);

      // Back at the real agent: the next call reaches it.
      await f.db.updateTable('hosts').set({ agent_address: moved.address }).where('id', '=', moved.hostId).execute();
      expect((await (await f.services.agents.forHost(moved.hostId)).inspect('env-1')).state).toBe('absent');
      expect(moved.calls.inspect).toBe(3);
      await Promise.all([moved.close(), impostor.close()]);
    });
  });
});
