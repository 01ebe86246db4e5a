import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { createLogger } from '../../common/logger.js';
import { dockerAvailable, dockerExec, releaseRunDir, removeNamespace, testDocker, testRunDir } from '../helpers/docker.js';
import { platformEnvAt, startLocalPlatform, type LocalPlatform } from '../../scripts/local-platform.js';
import { restCaller, waitUntil } from '../helpers/rest.js';
import { TerminalClient, upgradeStatus } from '../helpers/terminal-client.js';

// The terminal through the controller (issue 13 item 1) on the real platform: controller, agent,
// Docker, embedded PGlite, a real WebSocket client. Ports 19000-19199.

const hasDocker = await dockerAvailable();
if (!hasDocker) console.warn('e2e tests skipped: no Docker engine at /var/run/docker.sock (start dockerd; CI does)');

const ADMIN = 'e2e-term-admin-token-0123456789abcd';
const FAKE = path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt');
const MIB = 2 ** 20;
const NAMESPACE = `e2e-term-${process.pid}`;
const MAX_PER_USER = 2;
/** Long enough for every other test (the `yes` one stays silent 6.5 s), short enough to wait for. */
const IDLE_MS = 10_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!hasDocker)('terminal over a WebSocket through the controller', () => {
  const runDir = testRunDir();
  const docker = testDocker();
  let platform: LocalPlatform;
  let dir = '';
  let envId = '';
  let bob = '';
  const api = restCaller(() => platform.controller.httpUrl);
  const waitFor = (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000) => waitUntil(what, check, timeoutMs, undefined, 100);
  const wsUrl = (query: string, id = envId) => `${platform.controller.httpUrl.replace(/^http/, 'ws')}/api/v1/environments/${id}/terminal?${query}`;
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const sessions = () => platform.controller.services.terminals.sessions.stats();
  const ticket = async (token = ADMIN, id = envId) => api('POST', `/api/v1/environments/${id}/terminal/ticket`, token);
  const openWithTicket = async (query = 'cols=80&rows=24') => {
    const res = await ticket();
    expect(res.status).toBe(201);
    return TerminalClient.open(wsUrl(`${query}&ticket=${encodeURIComponent(res.body.data.ticket)}`));
  };
  const noSessions = () => waitFor('no terminal open', () => sessions().sessions === 0, 15_000);
  /** The CPU time (utime clock ticks) of the `yes` processes in the environment's container. */
  const yesCpuTicks = async () => {
    const [c] = await docker.listContainers({ filters: { label: [`remotegpu.env-id=${envId}`] } });
    const script = 'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = yes ] && cut -d" " -f14 $p/stat; done';
    return (await dockerExec(docker, c!.Id, ['sh', '-c', script])).stdout.trim();
  };
  const logs = async () => (await api('GET', `/api/v1/environments/${envId}/logs?lines=500`, ADMIN)).body.data.logs as string[];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rgpu-e2e-term-'));
    platform = await startLocalPlatform(
      platformEnvAt({ dir, runDir, adminToken: ADMIN, namespace: NAMESPACE }, {
        REMOTEGPU_FAKE_GPUS: FAKE,
        REMOTEGPU_REPORT_INTERVAL_MS: '500',
        REMOTEGPU_RECONCILE_INTERVAL_MS: '200',
        REMOTEGPU_AUTH_CACHE_MS: '0',
        REMOTEGPU_TERMINAL_MAX_PER_USER: String(MAX_PER_USER),
        REMOTEGPU_TERMINAL_IDLE_TIMEOUT_MS: String(IDLE_MS),
        REMOTEGPU_SSH_PORT_RANGE: '19000-19049',
        REMOTEGPU_JUPYTER_PORT_RANGE: '19050-19099',
      }),
      createLogger({ name: 'e2e-term', level: 'warn' }),
    );
    expect(platform.agentProblem).toBe('');
    await waitFor('host registered', async () => (await api('GET', '/api/v1/admin/hosts', ADMIN)).body?.data?.items?.length === 1, 30_000);
    const user = await api('POST', '/api/v1/admin/users', ADMIN, { name: 'term-bob' });
    expect(user.status).toBe(201);
    bob = (await api('POST', `/api/v1/admin/users/${user.body.data.id}/tokens`, ADMIN, { name: 'bob' })).body.data.token;
    const res = await api('POST', '/api/v1/environments', ADMIN, { name: 'term', image: 'devbox:1', cpu: 1, memory: 512 * MIB, gpu: 0, storage: 2 ** 30 });
    expect(res.status).toBe(201);
    envId = res.body.data.env_id;
    await waitFor('running', async () => (await api('GET', `/api/v1/environments/${envId}`, ADMIN)).body.data.status === 'running', 120_000);
  }, 300_000);

  afterAll(async () => {
    if (envId) await api('DELETE', `/api/v1/environments/${envId}`, ADMIN).catch(() => {});
    await waitFor('removed', async () => (await docker.listContainers({ all: true, filters: { label: [`remotegpu.env-id=${envId}`] } })).length === 0, 30_000).catch(() => {});
    await platform?.stop();
    await removeNamespace(NAMESPACE);
    rmSync(dir, { recursive: true, force: true });
    await releaseRunDir(runDir);
  }, 120_000);

  it('runs echo, sees a resize with stty size, and reports the exit code of `exit 3`', async () => {
    const t = await openWithTicket('cols=80&rows=24');
    t.type('echo hello-$((6*7))\n');
    await t.waitFor(/hello-42/);
    t.type('stty size; echo size-done\n');
    expect((await t.waitFor(/(\d+) (\d+)\r?\nsize-done/)).slice(1)).toEqual(['24', '80']);
    const mark = t.output.length;
    t.resize(132, 40);
    t.type('stty size; echo size2-done\n');
    expect((await t.waitFor(/(\d+) (\d+)\r?\nsize2-done/, 30_000, mark)).slice(1)).toEqual(['40', '132']);
    t.type('exit 3\n');
    expect(await t.closed()).toEqual({ code: 1000, reason: 'exited' });
    expect(t.exitCode).toBe(3);
    await noSessions();
    await waitFor('events', async () => (await logs()).some((l) => l.endsWith('terminal closed (exit code 3)')));
    expect((await logs()).some((l) => l.endsWith('terminal opened by admin'))).toBe(true);
  }, 120_000);

  it('opens with the bearer token (non-browser clients) and refuses the session cookie from another origin', async () => {
    const t = await TerminalClient.open(wsUrl('cols=80&rows=24'), { headers: bearer(ADMIN) });
    t.type('echo bearer-ok\n');
    await t.waitFor(/bearer-ok/);
    t.close();
    await noSessions();
    expect(await upgradeStatus(wsUrl(''), { cookie: `remotegpu_session=${ADMIN}`, origin: 'https://evil.example' })).toBe(403);
    expect(await upgradeStatus(wsUrl(''), { cookie: `remotegpu_session=${ADMIN}`, origin: platform.controller.httpUrl })).toBe(101);
    await noSessions();
  }, 60_000);

  it('refuses a used, an expired and a garbage ticket, and no credentials', async () => {
    const res = await ticket();
    const t = res.body.data.ticket as string;
    const first = await TerminalClient.open(wsUrl(`ticket=${encodeURIComponent(t)}`));
    first.close();
    expect(await upgradeStatus(wsUrl(`ticket=${encodeURIComponent(t)}`))).toBe(401);
    const expired = (await ticket()).body.data.ticket as string;
    await sql`update terminal_tickets set expires_at = now() - interval '1 second' where used_at is null`.execute(platform.controller.database.db);
    expect(await upgradeStatus(wsUrl(`ticket=${encodeURIComponent(expired)}`))).toBe(401);
    expect(await upgradeStatus(wsUrl('ticket=rgt_garbage'))).toBe(401);
    expect(await upgradeStatus(wsUrl('cols=80'))).toBe(401);
    expect(await upgradeStatus(wsUrl('cols=0'), bearer(ADMIN))).toBe(400);
    // Only hashes are stored.
    const stored = await sql<{ n: number }>`select count(*)::int as n from terminal_tickets where ticket_hash = ${t}`.execute(platform.controller.database.db);
    expect(stored.rows[0]!.n).toBe(0);
    await noSessions();
  }, 60_000);

  it("answers 404 for another user's environment, for the ticket and the WebSocket", async () => {
    const res = await ticket(bob);
    expect(res.status).toBe(404);
    expect(res.body.code).toBe(40401);
    expect(await upgradeStatus(wsUrl('cols=80&rows=24'), bearer(bob))).toBe(404);
    expect(await upgradeStatus(wsUrl('cols=80&rows=24', 'env-doesnotexist'), bearer(ADMIN))).toBe(404);
  });

  it('refuses more terminals than REMOTEGPU_TERMINAL_MAX_PER_USER', async () => {
    const open = await Promise.all(Array.from({ length: MAX_PER_USER }, () => openWithTicket()));
    await waitFor('sessions registered', () => sessions().sessions === MAX_PER_USER);
    const res = await ticket();
    expect(res.status).toBe(429);
    expect(res.body.code).toBe(42901);
    expect(await upgradeStatus(wsUrl('cols=80'), bearer(ADMIN))).toBe(429);
    for (const t of open) t.close();
    await noSessions();
  }, 60_000);

  it('closes the open session with 4401 when its token is revoked', async () => {
    const admins = (await api('GET', '/api/v1/admin/users', ADMIN)).body.data.items as { id: number; name: string }[];
    const adminId = admins.find((u) => u.name === 'admin')!.id;
    const created = (await api('POST', `/api/v1/admin/users/${adminId}/tokens`, ADMIN, { name: 'short-lived' })).body.data;
    const t = await TerminalClient.open(wsUrl('cols=80&rows=24'), { headers: bearer(created.token) });
    t.type('echo before-revoke\n');
    await t.waitFor(/before-revoke/);
    expect((await api('DELETE', `/api/v1/admin/users/${adminId}/tokens/${created.id}`, ADMIN)).status).toBe(204);
    expect(await t.closed()).toEqual({ code: 4401, reason: 'token revoked' });
    await noSessions();
    await waitFor('event', async () => (await logs()).some((l) => l.endsWith('terminal closed (token revoked)')));
  }, 60_000);

  it('keeps what the controller buffers bounded while `yes` runs and the client does not read', async () => {
    const t = await openWithTicket();
    t.type('yes terminal-backpressure-line\n');
    await t.waitFor(/terminal-backpressure-line/);
    // Read for a second (throughput), then stop reading.
    const readFrom = t.bytes;
    await sleep(1_000);
    const readMiB = (t.bytes - readFrom) / MIB;
    t.ws.pause();
    await sleep(500);
    const memory = () => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    const memoryBefore = memory();
    await sleep(6_000);
    const s = sessions();
    const growth = (memory() - memoryBefore) / MIB;
    console.log(`yes, client not reading for 6 s: read ${readMiB.toFixed(1)} MiB in the second before pausing; controller queued ${(s.queuedBytes / 1024).toFixed(0)} KiB now, ${(s.maxQueuedBytes / 1024).toFixed(0)} KiB at most; heap + buffers growth ${growth.toFixed(1)} MiB (controller + agent + test in one process)`);
    // Loose: the pause point is 1 MiB, plus one pty read in flight; unbounded would be hundreds of MiB.
    expect(s.maxQueuedBytes).toBeLessThan(4 * MIB);
    expect(growth).toBeLessThan(100);
    // The pause reached the container: `yes` is blocked on its writes (its CPU time stands still),
    // so nothing piles up in the agent either.
    const [first, second] = [await yesCpuTicks(), (await sleep(1_500), await yesCpuTicks())];
    console.log(`yes CPU ticks 1.5 s apart while the client does not read: ${first} → ${second}`);
    expect(first).not.toBe('');
    expect(second).toBe(first);
    t.ws.resume();
    t.close();
    await noSessions();
  }, 60_000);

  it('with ?flow=ack pauses `yes` while its output is unacknowledged, though the client reads, and goes on once acknowledged', async () => {
    const t = await openWithTicket('cols=80&rows=24&flow=ack');
    t.type('yes terminal-ack-line\n');
    await t.waitFor(/terminal-ack-line/);
    await waitFor('paused for unacknowledged output', () => sessions().paused === 1, 15_000);
    const before = t.bytes;
    await sleep(3_000);
    const s = sessions();
    console.log(`yes in ack mode, client reading but not acknowledging: received ${(t.bytes / 1024).toFixed(0)} KiB in all (${((t.bytes - before) / 1024).toFixed(0)} KiB in the 3 s after the pause); controller counts ${(s.queuedBytes / 1024).toFixed(0)} KiB unacknowledged, ${(s.maxQueuedBytes / 1024).toFixed(0)} KiB at most`);
    // Paused above 1 MiB unacknowledged (plus a pty read in flight); without acks the stream stays paused.
    expect(t.bytes).toBeLessThan(4 * MIB);
    expect(s.paused).toBe(1);
    expect(s.maxQueuedBytes).toBeLessThan(4 * MIB);
    // Acknowledging what arrived lets `yes` go on (until the next MiB is unacknowledged).
    t.ack(t.bytes);
    await waitFor('more output after the ack', () => t.bytes > before + 512 * 1024, 15_000);
    await waitFor('paused again', () => sessions().paused === 1, 15_000);
    expect(t.bytes).toBeLessThan(8 * MIB);
    t.close();
    await noSessions();
  }, 60_000);

  it('refuses an unknown flow mode with 400', async () => {
    expect(await upgradeStatus(wsUrl('flow=xoff'), bearer(ADMIN))).toBe(400);
  });

  it('closes a session without input or output for REMOTEGPU_TERMINAL_IDLE_TIMEOUT_MS with 4408', async () => {
    const t = await openWithTicket();
    t.type('echo then-silence\n');
    await t.waitFor(/then-silence/);
    expect(await t.closed(IDLE_MS + 20_000)).toEqual({ code: 4408, reason: 'idle timeout' });
    await noSessions();
    await waitFor('event', async () => (await logs()).some((l) => l.endsWith('terminal closed (idle timeout)')));
  }, 60_000);

  it('closes the session with 4409 when the environment is stopped', async () => {
    const t = await openWithTicket();
    t.type('echo before-stop\n');
    await t.waitFor(/before-stop/);
    expect((await api('POST', `/api/v1/environments/${envId}/stop`, ADMIN)).status).toBe(200);
    expect(await t.closed(60_000)).toEqual({ code: 4409, reason: 'environment is not running' });
    await noSessions();
    const res = await ticket();
    expect(res.status).toBe(409);
    expect(res.body.message).toMatch(/not running/);
  }, 90_000);
});
