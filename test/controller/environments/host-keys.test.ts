import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger.js';
import { hostKeyFingerprint } from '../../../common/ssh-host-keys.js';
import { hostKeysUpdate } from '../../../controller/environments/host-keys.js';
import { recordOutcome } from '../../../controller/environments/environment-writes.js';
import { recordOutcomes } from '../../../controller/environments/environment-outcomes.js';
import { EnvironmentObserver } from '../../../controller/environments/observer.js';
import { WakeSignal } from '../../../controller/environments/wake.js';
import { EnvironmentAccess } from '../../../controller/environments/access-info.js';
import { absentObservation } from '../../../controller/hosts/convert.js';
import type { AgentPool, ObservedEnvironment } from '../../../controller/hosts/types.js';
import { createTestDatabase, DB_TARGETS, type TestDatabase } from '../../helpers/databases.js';
import { insertHost, placeEnvironment } from '../hosts/seed.js';

// The SSH host keys an environment row keeps (issue 14 item 1): those its agent reported for its
// current container; a new container or none takes them away until its own are reported.

/** ed25519 blobs with distinct points (valid wire format; what the keys are does not matter here). */
const key = (n: number) => ({
  type: 'ssh-ed25519',
  key: Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.alloc(32, n)]).toString('base64'),
});
const seen = (envId: string, containerId: string, keys: { type: string; key: string }[], state: ObservedEnvironment['state'] = 'running'): ObservedEnvironment => ({
  ...absentObservation(envId),
  state,
  containerId,
  sshHostKeys: keys,
});
const row = (container: string, keys: { type: string; key: string }[]) => ({ id: 'env-k', ssh_host_keys_container: container, ssh_host_keys: keys });

describe('hostKeysUpdate', () => {
  it('stores reported keys of a container when the container or the keys changed', () => {
    expect(hostKeysUpdate(row('', []), seen('env-k', 'c1', [key(1)]))).toEqual({ envId: 'env-k', container: 'c1', keys: [key(1)] });
    expect(hostKeysUpdate(row('c1', [key(1)]), seen('env-k', 'c1', [key(1)]))).toBeUndefined();
    expect(hostKeysUpdate(row('c1', [key(1)]), seen('env-k', 'c1', [key(2)]))).toEqual({ envId: 'env-k', container: 'c1', keys: [key(2)] });
    expect(hostKeysUpdate(row('c1', [key(1)]), seen('env-k', 'c2', [key(1)]))).toEqual({ envId: 'env-k', container: 'c2', keys: [key(1)] });
  });

  it('keeps stored keys while the same container is reported without keys; clears them for another container or none', () => {
    expect(hostKeysUpdate(row('c1', [key(1)]), seen('env-k', 'c1', [], 'exited'))).toBeUndefined();
    expect(hostKeysUpdate(row('c1', [key(1)]), seen('env-k', 'c2', []))).toEqual({ envId: 'env-k', container: '', keys: [] });
    expect(hostKeysUpdate(row('c1', [key(1)]), absentObservation('env-k'))).toEqual({ envId: 'env-k', container: '', keys: [] });
    expect(hostKeysUpdate(row('c1', [key(1)]), undefined)).toEqual({ envId: 'env-k', container: '', keys: [] });
    expect(hostKeysUpdate(row('', []), seen('env-k', 'c2', []))).toBeUndefined();
    expect(hostKeysUpdate(row('', []), undefined)).toBeUndefined();
  });
});

const noAgents = { forHost: () => Promise.reject(new Error('no agent in this test')) } as unknown as AgentPool;

describe.each(DB_TARGETS)('host keys from reports on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('observer', () => {
    let t: TestDatabase;
    const observer = () => new EnvironmentObserver({ db: t.db, logger: createLogger({ name: 'test', level: 'silent' }), agents: noAgents, wake: new WakeSignal() });
    const stored = () => t.db.selectFrom('environments').select(['ssh_host_keys', 'ssh_host_keys_container']).where('id', '=', 'env-hk').executeTakeFirstOrThrow();
    const report = (observed: ObservedEnvironment[]) => observer().onReport('host-hk', observed, []);

    beforeAll(async () => {
      t = await createTestDatabase(target);
      await insertHost(t.db, 'host-hk');
      await placeEnvironment(t.db, 'env-hk', 'host-hk', { status: 'running' });
      await t.db.updateTable('environments').set({ observed_state: 'running', ssh_port: 20001 }).where('id', '=', 'env-hk').execute();
    });
    afterAll(async () => {
      await t?.close();
    });

    it('stores the keys of the current container, keeps them without keys, drops them for a new container', async () => {
      expect(await stored()).toEqual({ ssh_host_keys: [], ssh_host_keys_container: '' });
      // An invalid key in the report is dropped at the edge (observedFromProto); here both are valid.
      await report([seen('env-hk', 'c1', [key(1), key(2)])]);
      expect(await stored()).toEqual({ ssh_host_keys: [key(1), key(2)], ssh_host_keys_container: 'c1' });
      await report([seen('env-hk', 'c1', [])]);
      expect((await stored()).ssh_host_keys).toHaveLength(2);
      // What the API offers: each key with its fingerprint.
      const env = await t.db.selectFrom('environments').select(['ssh_port', 'jupyter_port', 'jupyter_token', 'ssh_host_keys']).where('id', '=', 'env-hk').executeTakeFirstOrThrow();
      const info = new EnvironmentAccess('').of({ ...env, public_address: '10.0.0.9' });
      expect(info?.ssh_host_keys).toEqual([key(1), key(2)].map((k) => ({ ...k, fingerprint: hostKeyFingerprint(k.key) })));
      // Recreated: another container, its keys not read yet.
      await report([seen('env-hk', 'c2', [])]);
      expect(await stored()).toEqual({ ssh_host_keys: [], ssh_host_keys_container: '' });
      await report([seen('env-hk', 'c2', [key(3)])]);
      expect(await stored()).toEqual({ ssh_host_keys: [key(3)], ssh_host_keys_container: 'c2' });
      // The container is gone.
      await report([]);
      expect(await stored()).toEqual({ ssh_host_keys: [], ssh_host_keys_container: '' });
    });

    it('drops the keys when an apply answers with another container (recreated), before any report says so', async () => {
      const generation = async () => (await t.db.selectFrom('environments').select('spec_generation').where('id', '=', 'env-hk').executeTakeFirstOrThrow()).spec_generation;
      const outcome = (container: string | undefined) => ({ status: 'running', status_reason: '', observed_state: 'running', ...(container !== undefined ? { container } : {}) }) as const;
      await report([seen('env-hk', 'c3', [key(4)])]);
      // The batched writer (the reconciler's usual path) and the one-row writer (a stop).
      let g = await generation();
      const batched = (container: string | undefined) => t.db.transaction().execute((trx) => recordOutcomes(trx, [{ envId: 'env-hk', generation: g, outcome: outcome(container) }]));
      await batched('c3');
      await batched(undefined);
      expect(await stored()).toEqual({ ssh_host_keys: [key(4)], ssh_host_keys_container: 'c3' });
      await batched('c4');
      expect(await stored()).toEqual({ ssh_host_keys: [], ssh_host_keys_container: '' });
      await report([seen('env-hk', 'c4', [key(5)])]);
      g = await generation();
      const single = (container: string | undefined) => t.db.transaction().execute((trx) => recordOutcome(trx, 'env-hk', g, outcome(container)));
      expect(await single('c4')).toBe(true);
      expect(await single(undefined)).toBe(true);
      expect(await stored()).toEqual({ ssh_host_keys: [key(5)], ssh_host_keys_container: 'c4' });
      expect(await single('')).toBe(true);
      expect(await stored()).toEqual({ ssh_host_keys: [], ssh_host_keys_container: '' });
    });
  });
});
