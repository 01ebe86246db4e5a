import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { pino } from 'pino';
import { loadControllerConfig } from '../../controller/config.js';
import { startController, type RunningController } from '../../controller/server.js';
import { DB_TARGETS, createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { freePort } from '../helpers/docker.js';
import { startTestAgent, type TestAgent } from '../helpers/test-agent.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// The controller with real gRPC and an in-process test agent over loopback: a controller restarted
// in the middle of a create converges; a silent host goes offline and its environment lost, and
// both come back when it reports again; log following is live and cancels the agent's stream.

const ADMIN = 'reconcile-admin-token-0123456789';
const JOIN = 'reconcile-join-token-0123456789';

describe.each(DB_TARGETS)('reconciliation on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('controller + test agent', () => {
    let dir: string;
    let database: TestDatabase | undefined;
    let controller: RunningController;
    let agent: TestAgent;
    let grpcPort: number;
    let envId = '';

    const start = async () => {
      const config = loadControllerConfig({
        DATABASE_URL: database?.url,
        REMOTEGPU_DATA_DIR: dir,
        REMOTEGPU_HTTP_PORT: String(await freePort()),
        REMOTEGPU_HTTP_HOST: '127.0.0.1',
        REMOTEGPU_GRPC_PORT: String(grpcPort),
        REMOTEGPU_GRPC_HOST: '127.0.0.1',
        REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
        REMOTEGPU_JOIN_TOKEN: JOIN,
        REMOTEGPU_HOST_TIMEOUT_MS: '1500',
        REMOTEGPU_RECONCILE_INTERVAL_MS: '100',
        REMOTEGPU_AGENT_TIMEOUT_MS: '2000',
      });
      return startController(config, pino({ level: 'silent' }));
    };
    const call = restCaller(() => controller.httpUrl);
    const api = (method: string, p: string, body?: unknown) => call(method, p, ADMIN, body);
    const env = async () => (await api('GET', `/api/v1/environments/${envId}`)).body.data;
    const waitFor = (what: string, check: () => Promise<boolean>, timeoutMs = 20_000) => waitUntil(what, check, timeoutMs, undefined, 100);

    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'rgpu-reconcile-'));
      if (target.name === 'postgres') database = await createTestDatabase(target);
      grpcPort = await freePort();
      controller = await start();
      await controller.database.db.insertInto('images').values({ name: 'img:1', docker_ref: 'img:1', jupyter_port: 8888 }).execute();
      agent = await startTestAgent({ controllerAddress: `127.0.0.1:${grpcPort}`, joinToken: JOIN, caPem: controller.services.trust.ca.certPem, gpus: 4 });
      agent.startReporting(200);
    });

    afterAll(async () => {
      await agent?.close();
      await controller?.stop();
      await database?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('converges after a controller restart in the middle of a create', async () => {
      agent.setFailure('apply', { code: GrpcStatus.UNAVAILABLE, details: 'engine busy' });
      const created = await api('POST', '/api/v1/environments', { name: 'r', image: 'img:1', cpu: 2, memory: 2 ** 30, gpu: 2, storage: 2 ** 30 });
      expect(created.status).toBe(201);
      envId = created.body.data.env_id;
      await waitFor('an apply attempt', async () => agent.calls.apply > 0);
      expect((await env()).status).toBe('creating');
      await controller.stop();
      agent.setFailure('apply', undefined);
      controller = await start();
      await waitFor('running after restart', async () => (await env()).status === 'running');
      const container = agent.containers.get(envId);
      expect(container?.spec.gpuUuids).toHaveLength(2);
      const logs = (await api('GET', `/api/v1/environments/${envId}/logs?lines=20`)).body.data.logs as string[];
      expect(logs.some((l) => l.includes('Scheduled on'))).toBe(true);
    });

    it('marks a silent host offline and its environment lost, and recovers when it reports again', async () => {
      agent.stopReporting();
      await waitFor('lost', async () => (await env()).status === 'lost');
      const lost = await env();
      expect(lost.status_reason).toMatch(/stopped reporting/);
      const hosts = (await api('GET', '/api/v1/admin/hosts')).body.data.items;
      expect(hosts[0].status).toBe('offline');
      expect(hosts[0].gpus_allocated).toBe(2); // a lost environment keeps its reservations
      agent.startReporting(200);
      await waitFor('running again', async () => (await env()).status === 'running');
      expect((await api('GET', '/api/v1/admin/hosts')).body.data.items[0].status).toBe('online');
    });

    it('follows logs live over SSE and cancels the agent stream when the client leaves', async () => {
      const abort = new AbortController();
      const res = await fetch(`${controller.httpUrl}/api/v1/environments/${envId}/logs?follow=true&lines=1`, {
        headers: { authorization: `Bearer ${ADMIN}` },
        signal: abort.signal,
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
      const reader = res.body!.getReader();
      await waitFor('agent follower', async () => agent.followerCount(envId) === 1);
      const cancelledBefore = agent.cancelledStreams;
      const emittedAt = Date.now();
      agent.emitLog(envId, 'epoch 1: loss 0.42');
      let text = '';
      while (!text.includes('epoch 1: loss 0.42')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString();
      }
      const latency = Date.now() - emittedAt;
      console.log(`SSE follow latency: ${latency} ms`);
      expect(text).toMatch(/data: \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] epoch 1: loss 0\.42/);
      abort.abort();
      await agent.waitForCancelledStreams(cancelledBefore + 1);
      await waitFor('no follower left', async () => agent.followerCount(envId) === 0);
    });

    it('stops, starts and deletes through the agent, freeing reservations only when removal is confirmed', async () => {
      expect((await api('POST', `/api/v1/environments/${envId}/stop`)).status).toBe(200);
      await waitFor('stopped', async () => (await env()).status === 'stopped');
      expect((await api('GET', '/api/v1/admin/hosts')).body.data.items[0].gpus_allocated).toBe(0);
      expect((await api('POST', `/api/v1/environments/${envId}/start`, { gpu: 1 })).status).toBe(200);
      await waitFor('running', async () => (await env()).status === 'running');
      expect(agent.containers.get(envId)?.spec.gpuUuids).toHaveLength(1);
      // Not an unreachable agent but a refusal (Docker: volume in use): still retried until confirmed.
      agent.setFailure('remove', { code: GrpcStatus.INTERNAL, details: 'volume is in use' });
      const del = await fetch(`${controller.httpUrl}/api/v1/environments/${envId}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } });
      expect(del.status).toBe(204);
      expect((await api('GET', `/api/v1/environments/${envId}`)).status).toBe(404);
      await waitFor('two removal attempts', async () => agent.calls.remove > 1);
      expect((await api('GET', '/api/v1/admin/hosts')).body.data.items[0].gpus_allocated).toBe(1);
      agent.setFailure('remove', undefined);
      await waitFor('removed', async () => !agent.containers.has(envId));
      await waitFor('freed', async () => (await api('GET', '/api/v1/admin/hosts')).body.data.items[0].gpus_allocated === 0);
    });
  });
});
