import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createLogger } from '../../common/logger.js';
import { dockerAvailable, dockerExec, releaseRunDir, removeNamespace, testDocker, testRunDir } from '../helpers/docker.js';
import { startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { restCaller, waitUntil } from '../helpers/rest.js';

// Bounded log streaming on the real platform (controller, agent, Docker; embedded PGlite), issue 11
// items 5 and 6: a container that writes 64 MiB without a newline while a client follows, and one
// that runs `yes` while the client does not read. The agent keeps reporting at its interval and
// the controller's buffers stay bounded. Figures are printed; the bounds asserted are loose.

const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('e2e tests skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const ADMIN = 'e2e-logs-admin-token-0123456789ab';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const MIB = 2 ** 20;
const REPORT_MS = 500;
/**
 * The largest gap between reports the tests accept: loose, because CI runs other Docker tests on
 * the same two CPUs (2.4 s seen there); the old decoder blocked the agent's event loop for ~20 s on
 * 32 MiB without a newline (the work grows with the square of the size); a host is marked offline,
 * its environments lost, after REMOTEGPU_HOST_TIMEOUT_MS (30 s by default) without a report.
 */
const MAX_REPORT_GAP_MS = 10_000;
const NAMESPACE = `e2e-logs-${process.pid}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An SSE response read on demand: `pump` reads until `until` holds or `paused` is set. */
class SseClient {
  text = '';
  bytes = 0;
  /** When the last bytes arrived. */
  lastReadAt = Date.now();
  events = 0;
  paused = false;
  done = false;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();

  constructor(
    body: ReadableStream<Uint8Array>,
    private readonly keep: (text: string) => string,
  ) {
    this.reader = body.getReader();
  }

  /** Reads until `until()` holds, the client is paused, or the stream ends. */
  async pump(until: () => boolean): Promise<void> {
    while (!this.done && !this.paused && !until()) {
      const { value, done } = await this.reader.read();
      if (done) {
        this.done = true;
        return;
      }
      this.bytes += value.length;
      this.lastReadAt = Date.now();
      const chunk = this.decoder.decode(value, { stream: true });
      this.events += chunk.split('\n\n').length - 1;
      this.text = this.keep(this.text + chunk);
    }
  }

  cancel(): Promise<void> {
    return this.reader.cancel().catch(() => {});
  }
}

describe.skipIf(!hasDocker)('bounded log streaming on one machine', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let platform: LocalPlatform;
  let dir = '';
  let envId = '';
  const reports: number[] = [];
  const api = restCaller(() => platform.controller.httpUrl);
  const env = async () => (await api('GET', `/api/v1/environments/${envId}`, ADMIN)).body.data;
  const waitFor = (what: string, check: () => Promise<boolean>, timeoutMs = 60_000) => waitUntil(what, check, timeoutMs, undefined, 250);
  const follows = () => platform.controller.services.environmentLogs.follows.stats();
  const openFollow = async (keep: (text: string) => string) => {
    const res = await fetch(`${platform.controller.httpUrl}/api/v1/environments/${envId}/logs?follow=true&lines=1`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(res.status).toBe(200);
    return new SseClient(res.body!, keep);
  };
  /** Largest gap between the agent's reports (as the controller received them) from `sinceMs` on, and how many. */
  const reportGaps = (sinceMs: number) => {
    const times = reports.filter((t) => t >= sinceMs);
    let max = 0;
    for (let i = 1; i < times.length; i++) max = Math.max(max, times[i]! - times[i - 1]!);
    return { max, count: times.length };
  };
  const heapMiB = () => process.memoryUsage().heapUsed / MIB;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-e2e-logs-'));
    platform = await startLocalPlatform(
      {
        PATH: process.env.PATH,
        REMOTEGPU_DATA_DIR: path.join(dir, 'data'),
        REMOTEGPU_RUN_DIR: runDir,
        REMOTEGPU_HTTP_PORT: '0',
        REMOTEGPU_GRPC_PORT: '0',
        REMOTEGPU_AGENT_LISTEN: '127.0.0.1:0',
        REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
        REMOTEGPU_FAKE_GPUS: FAKE,
        REMOTEGPU_NAMESPACE: NAMESPACE,
        REMOTEGPU_REPORT_INTERVAL_MS: String(REPORT_MS),
        REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
        REMOTEGPU_SSH_PORT_RANGE: '29000-29049',
        REMOTEGPU_JUPYTER_PORT_RANGE: '29050-29099',
      },
      createLogger({ name: 'e2e-logs', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    // Record when each report of the agent reaches the controller (the real report, passed on unchanged).
    const registry = platform.controller.services.registry;
    const report = registry.report.bind(registry);
    registry.report = (input) => {
      reports.push(Date.now());
      return report(input);
    };
    await waitFor('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
    const res = await api('POST', '/api/v1/environments', ADMIN, { name: 'logs', image: 'devbox:1', cpu: 1, memory: 512 * MIB, gpu: 0, storage: 2 ** 30 });
    expect(res.status).toBe(201);
    envId = res.body.data.env_id;
    await waitFor('running', async () => (await env()).status === 'running', 120_000);
  }, 300_000);

  afterAll(async () => {
    if (envId) await api('DELETE', `/api/v1/environments/${envId}`, ADMIN).catch(() => {});
    await waitFor('removed', async () => (await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${envId}`] } })).length === 0, 30_000).catch(() => {});
    await platform?.stop();
    await removeNamespace(NAMESPACE);
    rmSync(dir, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('reports at its interval when idle (the baseline)', async () => {
    const since = Date.now();
    await sleep(4000);
    const gaps = reportGaps(since);
    console.log(`idle: agent reports: ${gaps.count} in 4 s, largest gap ${gaps.max} ms (interval ${REPORT_MS} ms)`);
    expect(gaps.count).toBeGreaterThan(1);
  });

  it('streams 64 MiB written without a newline as 16 KiB pieces while the agent keeps reporting', async () => {
    const total = 64 * MIB;
    const pieces = total / (16 * 1024);
    let continued = 0;
    // Keep only the tail of what was read, and count the continued pieces as they pass.
    const client = await openFollow((text) => {
      const cut = text.lastIndexOf('\n\n');
      const complete = text.slice(0, cut + 2);
      continued += complete.split(' [continued]\n\n').length - 1;
      return text.slice(cut + 2);
    });
    await client.pump(() => client.events >= 1);
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const startedAt = Date.now();
    let written = false;
    const writer = dockerExec(docker, `remotegpu-${envId}`, ['sh', '-c', `head -c ${total} /dev/zero | tr '\\0' a > /proc/1/fd/1`]).finally(() => {
      written = true;
    });
    // Until every piece arrived, or the writer is done and nothing came for 5 s: Docker rotates a
    // container's log files (10 MB × 3) under a follower that lags, so on a loaded machine some
    // pieces may never reach the agent.
    const quiet = async () => {
      while (!(written && Date.now() - client.lastReadAt > 5000)) await sleep(250);
    };
    await Promise.race([client.pump(() => continued >= pieces - 1), quiet(), sleep(240_000)]);
    const took = Date.now() - startedAt;
    loop.disable();
    expect((await writer).exitCode).toBe(0);
    await client.cancel();
    const gaps = reportGaps(startedAt);
    console.log(
      `64 MiB without newline: ${continued} continued pieces, ${(client.bytes / MIB).toFixed(1)} MiB of SSE in ${took} ms; ` +
        `agent reports: ${gaps.count}, largest gap ${gaps.max} ms (interval ${REPORT_MS} ms); event loop delay max ${(loop.max / 1e6).toFixed(0)} ms, p99 ${(loop.percentile(99) / 1e6).toFixed(0)} ms; heap ${heapMiB().toFixed(0)} MiB`,
    );
    expect(continued).toBeGreaterThanOrEqual(pieces / 2); // loose: see quiet() above
    expect(gaps.count).toBeGreaterThan(1);
    expect(gaps.max).toBeLessThan(MAX_REPORT_GAP_MS);
    expect((await env()).status).toBe('running');
    await waitFor('follow closed', async () => follows().follows === 0, 10_000);
  }, 300_000);

  it('holds a bounded buffer for a client that stops reading while the container runs `yes` (100,000 lines of 1000 characters)', async () => {
    const client = await openFollow((text) => text.slice(-4096));
    await client.pump(() => client.events >= 1); // the client reads one entry, then nothing
    client.paused = true;
    (globalThis as { gc?: () => void }).gc?.();
    const heapBefore = heapMiB();
    const startedAt = Date.now();
    let heapMax = heapBefore;
    let bufferedMax = 0;
    let charsMax = 0;
    const sampler = setInterval(() => {
      heapMax = Math.max(heapMax, heapMiB());
      bufferedMax = Math.max(bufferedMax, follows().bufferedLines);
      charsMax = Math.max(charsMax, follows().bufferedChars);
    }, 100);
    // Lines of 1000 characters, so that the socket buffers between the controller and the client
    // (tens of MiB on loopback) fill within seconds and the controller has to hold lines or stop.
    const LINES = 100_000;
    const yes = await dockerExec(docker, `remotegpu-${envId}`, ['sh', '-c', `yes "$(printf '%01000d' 0)" | head -n ${LINES} > /proc/1/fd/1`]);
    expect(yes.exitCode).toBe(0);
    await sleep(2000);
    clearInterval(sampler);
    const gaps = reportGaps(startedAt);
    const stats = follows();
    console.log(
      `yes: ${LINES} lines of 1000 characters (${((LINES * 1001) / MIB).toFixed(0)} MiB) under a client that stopped reading: ` +
        `the follow's buffer held at most ${bufferedMax} lines / ${(charsMax / MIB).toFixed(2)} Mi characters, ${stats.skipped} skipped; ` +
        `heap ${heapBefore.toFixed(0)} MiB before, max ${heapMax.toFixed(0)} MiB during; agent reports: ${gaps.count}, largest gap ${gaps.max} ms`,
    );
    expect(bufferedMax, 'the client’s socket never filled: the test did not exercise a slow client').toBeGreaterThan(0);
    expect(bufferedMax).toBeLessThanOrEqual(1100); // 1000 lines of output + the event allowance
    expect(charsMax).toBeLessThanOrEqual(MIB + 100 * 1024 + 1000);
    expect(heapMax - heapBefore).toBeLessThan(64); // MiB; loose (the old code grew ~98 MiB per 300,000 lines)
    expect(gaps.max).toBeLessThan(MAX_REPORT_GAP_MS);

    // The client reads again: the stream is alive and delivers the output it held back.
    client.paused = false;
    await Promise.race([client.pump(() => client.events >= 2000), sleep(30_000)]);
    expect(client.events).toBeGreaterThanOrEqual(2000);
    expect(client.text).toMatch(/\] 0{1000}\n\n/);
    await client.cancel();
    await waitFor('follow closed', async () => follows().follows === 0, 10_000);
  }, 120_000);
});
