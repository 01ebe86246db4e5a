import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningController } from '../../controller/server.js';
import { DB_TARGETS } from '../helpers/databases.js';
import { startTestController, type TestController } from '../helpers/controller.js';
import { startTestAgent, type TestAgent } from '../helpers/test-agent.js';
import { restCaller, waitUntil } from '../helpers/rest.js';
import { metricValue, PROMTOOL, promtoolCheck, samplesOf } from '../helpers/metrics.js';

// GET /metrics on a real controller (HTTP, gRPC over loopback, each database target) with a test
// agent of 8 simulated H100s: the values move with what happens (a create, a report, a queued
// create, a refusal), gauges read at scrape time show the host and its GPUs, no label carries an
// environment id, REMOTEGPU_METRICS_TOKEN guards the endpoint, and promtool accepts the output.

const ADMIN = 'metrics-admin-token-0123456789abcdef';
const JOIN = 'metrics-join-token-0123456789abcdef';
const SCRAPER = 'metrics-scraper-token-0123456789abcd';
const GIB = 2 ** 30;
const H100 = 'NVIDIA H100 80GB HBM3';

describe.each(DB_TARGETS)('controller metrics on $name', (target) => {
  describe.skipIf(target.skipReason !== '')('controller + test agent', () => {
    let platform: TestController | undefined;
    let controller: RunningController;
    let agent: TestAgent;
    const call = restCaller(() => controller.httpUrl);
    const api = (method: string, p: string, body?: unknown) => call(method, p, ADMIN, body);
    const scrape = async (token: string | null = SCRAPER) => {
      const res = await fetch(`${controller.httpUrl}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
    };
    const metrics = async () => (await scrape()).text;
    const reportStatusCalls = async () => metricValue(await metrics(), 'remotegpu_controlplane_request_duration_seconds_count', { method: 'ReportStatus', code: 'ok' });

    beforeAll(async () => {
      platform = await startTestController(target, { admin: ADMIN, join: JOIN }, { REMOTEGPU_METRICS_TOKEN: SCRAPER });
      controller = platform.controller;
      agent = await startTestAgent({ ...platform.agentOptions, gpus: 8 });
      await agent.report();
    });
    afterAll(async () => {
      await agent?.close();
      await platform?.close();
    });

    it('answers 401 without the scrape token and 200 in the exposition format with it', async () => {
      for (const token of [null, 'wrong-token-0123456789abcdef', ADMIN]) {
        const res = await scrape(token);
        expect(res.status).toBe(401);
        expect(JSON.parse(res.text).code).toBe(40101);
      }
      const ok = await scrape();
      expect(ok.status).toBe(200);
      expect(ok.type).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(ok.text).toContain('remotegpu_controller_process_cpu_seconds_total');
    });

    it('shows the registered host and its GPUs, read at scrape time', async () => {
      const text = await metrics();
      expect(metricValue(text, 'remotegpu_hosts', { status: 'online' })).toBe(1);
      expect(metricValue(text, 'remotegpu_gpus', { model: H100 })).toBe(8);
      expect(metricValue(text, 'remotegpu_gpus_allocated', { model: H100 })).toBe(0);
      expect(metricValue(text, 'remotegpu_gpus_unhealthy', { model: H100 })).toBe(0);
      expect(metricValue(text, 'remotegpu_db_pool_max_connections', { pool: 'main' })).toBe(target.name === 'postgres' ? 10 : 1);
      if (target.name === 'postgres') expect(samplesOf(text, 'remotegpu_db_pool_connections', { pool: 'main' }).length).toBe(2);
    });

    it('counts a report', async () => {
      const before = await reportStatusCalls();
      await agent.report();
      await agent.report();
      expect(await reportStatusCalls()).toBe(before + 2);
    });

    it('counts placements by outcome and reason, GPUs allocated, create→running and the queue', async () => {
      const placed = { operation: 'create', outcome: 'placed', reason: 'none' };
      expect(metricValue(await metrics(), 'remotegpu_placements_total', placed)).toBe(0);
      const created = await api('POST', '/api/v1/environments', { name: 'one', image: 'img:1', cpu: 1, memory: GIB, gpu: 2, storage: GIB });
      expect(created.status).toBe(201);
      const envId = created.body.data.env_id as string;
      let text = await metrics();
      expect(metricValue(text, 'remotegpu_placements_total', placed)).toBe(1);
      expect(metricValue(text, 'remotegpu_placement_duration_seconds_count', { operation: 'create', outcome: 'placed' })).toBe(1);
      expect(metricValue(text, 'remotegpu_gpus_allocated', { model: H100 })).toBe(2);

      await waitUntil('running', async () => {
        await agent.report();
        return (await api('GET', `/api/v1/environments/${envId}`)).body.data.status === 'running';
      }, 20_000);
      text = await metrics();
      expect(metricValue(text, 'remotegpu_create_to_running_seconds_count')).toBe(1);
      expect(metricValue(text, 'remotegpu_reconcile_pass_duration_seconds_count')).toBeGreaterThan(0);

      // Never fits (16 GPUs on an 8-GPU fleet): refused with no_capacity, queue or not.
      expect((await api('POST', '/api/v1/environments', { name: 'huge', image: 'img:1', cpu: 1, memory: GIB, gpu: 16, storage: GIB, queue: true })).status).toBe(409);
      // Fits the host, not now (6 GPUs free): queued.
      const queued = await api('POST', '/api/v1/environments', { name: 'later', image: 'img:1', cpu: 1, memory: GIB, gpu: 8, storage: GIB, queue: true });
      expect(queued.status).toBe(201);
      text = await metrics();
      expect(metricValue(text, 'remotegpu_placements_total', { operation: 'create', outcome: 'refused', reason: 'no_capacity' })).toBe(1);
      expect(metricValue(text, 'remotegpu_placements_total', { operation: 'create', outcome: 'queued', reason: 'no_capacity' })).toBe(1);
      expect(metricValue(text, 'remotegpu_environments_pending')).toBe(1);

      // Deleting the first frees room: the reconciler places the queued one.
      expect((await api('DELETE', `/api/v1/environments/${envId}`)).status).toBe(204);
      await waitUntil('queued one placed', async () => {
        await agent.report();
        return metricValue(await metrics(), 'remotegpu_placements_total', { operation: 'queue', outcome: 'placed' }) === 1;
      }, 20_000);
      expect(metricValue(await metrics(), 'remotegpu_environments_pending')).toBe(0);
    });

    it('labels requests with the route template, never an id', async () => {
      const created = await api('POST', '/api/v1/environments', { name: 'route', image: 'img:1', cpu: 1, memory: GIB, gpu: 0, storage: GIB });
      const envId = created.body.data.env_id as string;
      expect((await api('GET', `/api/v1/environments/${envId}`)).status).toBe(200);
      expect((await api('GET', '/api/v1/no-such-thing/env-123')).status).toBe(404);
      const text = await metrics();
      expect(metricValue(text, 'remotegpu_http_request_duration_seconds_count', { method: 'GET', route: '/api/v1/environments/:env_id', status: '200' })).toBeGreaterThan(0);
      expect(metricValue(text, 'remotegpu_http_request_duration_seconds_count', { method: 'POST', route: '/api/v1/environments', status: '201' })).toBeGreaterThan(0);
      expect(metricValue(text, 'remotegpu_http_request_duration_seconds_count', { route: 'unmatched', status: '404' })).toBeGreaterThan(0);
      expect(text).not.toContain(envId);
      expect(text).not.toContain('env-123');
      expect(text).not.toContain(agent.hostId);
    });

    it.skipIf(!PROMTOOL)('passes promtool check metrics', async () => {
      const { code, output } = await promtoolCheck(await metrics());
      expect(output).toBe('');
      expect(code).toBe(0);
    });
  });
});
