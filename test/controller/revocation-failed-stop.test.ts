import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { DB_TARGETS } from '../helpers/databases.js';
import { createTestApi, serveControlPlane, type ServedControlPlane, type TestApi } from '../helpers/api.js';
import { seedImage } from '../helpers/hosts.js';
import { startTestAgent, type TestAgent } from '../helpers/test-agent.js';
import { OwnerEffects } from '../../controller/environments/owner-effects.js';
import { WakeSignal } from '../../controller/environments/wake.js';

// A review found that a member removed while a failed stop had left the container running kept
// the old Jupyter token working: the rotation only applied environments meant to run.

describe.each(DB_TARGETS)('Jupyter token rotation after a failed stop on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('a container still running although stopped', () => {
    let api: TestApi;
    let controlPlane: ServedControlPlane | undefined;
    let agent: TestAgent;
    beforeAll(async () => {
      api = await createTestApi(target);
      controlPlane = await serveControlPlane(api);
      agent = await startTestAgent(controlPlane.agentOptions);
      await seedImage(api.db, 'img:1', 'img:1');
    });
    afterAll(async () => {
      await agent?.close();
      await controlPlane?.close();
      await api?.close();
    });
    it('a member removed while a failed stop left the container running: the container gets the new token', async () => {
      const admin = (method: string, path: string, body?: unknown) => api.request(method, path, { token: api.adminToken, body });
      const created = await admin('POST', '/api/v1/environments', { name: 'r', image: 'img:1', cpu: 1, memory: 2 ** 30, gpu: 0, storage: 2 ** 30 });
      const id = created.body.data.env_id as string;
      const env0 = await api.db.selectFrom('environments').select(['owner_id']).where('id', '=', id).executeTakeFirstOrThrow();
      const ws = await api.createWorkspace('ws', env0.owner_id);
      const member = await api.createUser('mallory');
      await api.addMember(ws, member.id);
      await api.db.updateTable('environments').set({ workspace_id: ws }).where('id', '=', id).execute();
      await api.services.reconciler.runOnce();
      agent.setFailure('stop', { code: GrpcStatus.INTERNAL, details: 'device or resource busy' });
      expect((await admin('POST', `/api/v1/environments/${id}/stop`)).status).toBe(200);
      await api.services.reconciler.runOnce();
      const before = await api.db.selectFrom('environments').select(['status', 'desired_state', 'observed_state', 'jupyter_token', 'spec_generation', 'applied_generation']).where('id', '=', id).executeTakeFirstOrThrow();
      const oldToken = agent.containers.get(id)!.spec.jupyterToken;
      expect(before).toMatchObject({ status: 'error', desired_state: 'stopped', observed_state: 'running' });
      expect(oldToken).toBe(before.jupyter_token);
      await api.db.transaction().execute((trx) => new OwnerEffects(new WakeSignal()).memberRemoved(trx, { id: ws, name: 'ws' }, { id: member.id, name: 'mallory' }, { id: env0.owner_id, name: 'owner' }));
      agent.setFailure('stop', undefined); // the host recovered
      await api.services.reconciler.runOnce();
      await api.services.reconciler.runOnce();
      const after = await api.db.selectFrom('environments').select(['status', 'desired_state', 'jupyter_token', 'spec_generation', 'applied_generation']).where('id', '=', id).executeTakeFirstOrThrow();
      expect(after.jupyter_token).not.toBe(oldToken);
      expect(agent.containers.get(id)!.spec.jupyterToken).toBe(after.jupyter_token);
    });
  });
});
