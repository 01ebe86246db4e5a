import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { caPin, certSha256, createCa } from '../../../common/pki.js';
import { HostFacts } from '../../../gen/remotegpu/v1/types.js';
import { identityAtStart, type AgentIdentity } from '../../../agent/identity.js';
import { Reporter } from '../../../agent/reporter.js';
import { emptyRuntime } from './fixtures.js';
import { JOIN_SECRET, startFakeController, type FakeController } from './fake-controller.js';

// The reporter against a fake ControlPlane over real TLS: it pins the controller, registers once
// with a CSR, reports with its host certificate, renews it before it expires without a pause in
// the reports, and never registers again because of what the controller answers.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface Started {
  reporter: Reporter;
  logs: { level: number; msg: string; reason?: string }[];
  identities: AgentIdentity[];
  dataDir: string;
}

async function startReporter(fake: FakeController, options: { pin?: string; dataDir?: string; insecure?: boolean } = {}): Promise<Started> {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'rgpu-reporter-'));
  if (!options.dataDir) cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const logs: Started['logs'] = [];
  const identities: AgentIdentity[] = [];
  const insecure = options.insecure ?? false;
  const settings = { dataDir, joinToken: JOIN_SECRET, caPin: insecure ? undefined : (options.pin ?? caPin(fake.ca.certPem)), grpcInsecure: insecure };
  const reporter = new Reporter({
    controllers: [fake.address],
    joinToken: settings.joinToken,
    caPin: settings.caPin,
    insecure,
    identity: await identityAtStart(settings),
    dataDir,
    intervalMs: 100,
    runtime: emptyRuntime(),
    logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) }),
    facts: async () => HostFacts.fromPartial({ hostname: 'gpu-box-1', cpuCores: 8 }),
    sshReady: () => false,
    onIdentity: (identity) => void identities.push(identity),
    backoffMinMs: 50,
    backoffMaxMs: 200,
  });
  cleanups.push(() => reporter.stop());
  await reporter.start();
  return { reporter, logs, identities, dataDir };
}

const saved = (dataDir: string) => JSON.parse(readFileSync(path.join(dataDir, 'agent-identity.json'), 'utf8')) as AgentIdentity;

describe('reporter with mutual TLS', () => {
  it('registers once, reports with its certificate and renews it before it expires, reports flowing', async () => {
    const fake = await startFakeController({ validityMs: 3000, pendingApproval: true });
    cleanups.push(fake.stop);
    const agent = await startReporter(fake);
    // Issued: the registered certificate, then two renewed ones; the last one in use.
    await until('two renewals in use', () => fake.state.issued.length >= 3 && fake.state.reports.at(-1)?.cert === certSha256(fake.state.issued[2]!), 15_000);
    await agent.reporter.stop(); // (waits for a call in flight) a consistent picture below

    expect(fake.state.registers).toBe(1);
    expect(agent.reporter.hostId).toBe('host-t1');
    const reports = fake.state.reports;
    expect(reports.every((r) => r.identity === 'host-t1')).toBe(true);
    expect(new Set(reports.map((r) => r.cert)).size).toBe(fake.state.issued.length);
    // No pause around the renewals: never more than ~2 intervals between reports.
    const gaps = reports.slice(1).map((r, i) => r.atMs - reports[i]!.atMs);
    expect(Math.max(...gaps)).toBeLessThan(1000);

    // The identity file holds the latest key and certificate, mode 0600; the AgentService was told each time.
    const file = saved(agent.dataDir);
    expect(file).toMatchObject({ version: 2, hostId: 'host-t1', controller: fake.address, caPem: fake.ca.certPem, certPem: fake.state.issued.at(-1) });
    expect(file.keyPem).toContain('PRIVATE KEY');
    expect(statSync(path.join(agent.dataDir, 'agent-identity.json')).mode & 0o777).toBe(0o600);
    expect(agent.identities.map((i) => i.certPem)).toEqual(fake.state.issued);

    const messages = agent.logs.map((l) => l.msg);
    expect(messages).toContain('registered; waiting for an admin to approve host host-t1 (POST /api/v1/admin/hosts/host-t1/approve)');
    expect(messages.filter((m) => m.startsWith('certificate renewed, valid until ')).length).toBe(fake.state.issued.length - 1);
    expect(messages.filter((m) => m === 'connected to the controller')).toHaveLength(1);
  }, 30_000);

  it('keeps its identity whatever the controller answers: refused reports are retried, never a new registration', async () => {
    const fake = await startFakeController({ validityMs: 3_600_000 });
    cleanups.push(fake.stop);
    const agent = await startReporter(fake);
    await until('connected', () => fake.state.reports.length >= 2);
    fake.state.reportError = { code: GrpcStatus.UNAUTHENTICATED, details: 'unknown host certificate' };
    const refusedFrom = fake.state.reports.length;
    await until('refused reports retried', () => fake.state.reports.length >= refusedFrom + 3);
    fake.state.reportError = { code: GrpcStatus.NOT_FOUND, details: 'no host host-t1' };
    await until('more refused reports', () => fake.state.reports.length >= refusedFrom + 6);
    fake.state.reportError = undefined;
    await until('connected again', () => agent.logs.filter((l) => l.msg === 'connected to the controller').length === 2);

    expect(fake.state.registers).toBe(1);
    expect(saved(agent.dataDir).hostId).toBe('host-t1');
    const refusals = agent.logs.filter((l) => l.msg.includes("the controller refuses this host's certificate"));
    expect(refusals).toHaveLength(1); // one line per state change, not per retry
    expect(refusals[0]!.msg).toMatch(/host removed\? run `remotegpu-agent reset` and join again/);
    expect(refusals[0]!.reason).toBe('unknown host certificate');

    // A restarted agent uses the saved identity: no second registration.
    await agent.reporter.stop();
    const seen = fake.state.reports.length;
    const again = await startReporter(fake, { dataDir: agent.dataDir });
    await until('reports after restart', () => fake.state.reports.length >= seen + 2);
    expect(fake.state.registers).toBe(1);
    expect(fake.state.reports.slice(seen).every((r) => r.identity === 'host-t1')).toBe(true);
    expect(again.logs.some((l) => l.msg.startsWith('registered'))).toBe(false);
  });

  it('refuses a controller that presents another CA than the join token pins, and never registers', async () => {
    const fake = await startFakeController({ validityMs: 3_600_000 });
    cleanups.push(fake.stop);
    const pinned = caPin((await createCa('the real cluster CA')).certPem);
    const agent = await startReporter(fake, { pin: pinned });
    await sleep(1500); // several attempts with backoff
    expect(fake.state.registers).toBe(0);
    expect(agent.reporter.hostId).toBeUndefined();
    const refusals = agent.logs.filter((l) => l.level >= 50);
    expect(refusals).toHaveLength(1);
    expect(refusals[0]!.msg).toBe(
      `controller ${fake.address} presents a certificate chain whose CA is ${caPin(fake.ca.certPem)} (CN=fake cluster CA), but the join token pins ${pinned}; refusing to register (wrong controller address, or a token from another cluster); retrying with backoff`,
    );
  });

  it('logs a failing renewal once, then that the certificate expired, and keeps reporting', async () => {
    const fake = await startFakeController({ validityMs: 1500 });
    cleanups.push(fake.stop);
    fake.state.renewError = { code: GrpcStatus.INTERNAL, details: 'CA unavailable' };
    const agent = await startReporter(fake);
    await until('the certificate expired', () => agent.logs.some((l) => l.msg.startsWith('the host certificate expired')), 10_000);
    const after = fake.state.reports.length;
    await until('reports after expiry', () => fake.state.reports.length >= after + 2);
    expect(agent.logs.filter((l) => l.msg.startsWith('certificate renewal failed'))).toHaveLength(1);
    const expired = agent.logs.filter((l) => l.msg.startsWith('the host certificate expired'));
    expect(expired).toHaveLength(1);
    expect(expired[0]!.msg).toMatch(/run `remotegpu-agent reset`, delete host host-t1 on the controller and join again/);
    expect(fake.state.registers).toBe(1);
    expect(saved(agent.dataDir).certPem).toBe(fake.state.issued[0]);
  });
});

describe('reporter renewal answered with another CA', () => {
  it('keeps the pinned CA and its certificate: a renewal never changes whom the agent trusts', async () => {
    const fake = await startFakeController({ validityMs: 1500 });
    cleanups.push(fake.stop);
    fake.state.renewCa = await createCa('swapped CA');
    const agent = await startReporter(fake);
    await until('a refused renewal', () => agent.logs.some((l) => l.msg.startsWith('certificate renewal failed')), 10_000);
    expect(saved(agent.dataDir).caPem).toBe(fake.ca.certPem);
    expect(saved(agent.dataDir).certPem).toBe(fake.state.issued[0]);
    expect(JSON.stringify(agent.logs.find((l) => l.msg.startsWith('certificate renewal failed')))).toMatch(/other than the pinned one/);
  });
});

describe('reporter in insecure mode (REMOTEGPU_GRPC_INSECURE=1)', () => {
  it('registers over plaintext without a pin, keeps the bearer credential and reports with it', async () => {
    const fake = await startFakeController({ validityMs: 3_600_000, insecure: true });
    cleanups.push(fake.stop);
    const agent = await startReporter(fake, { insecure: true });
    await until('reports', () => fake.state.reports.length >= 3);
    expect(fake.state.registers).toBe(1);
    expect(fake.state.reports.every((r) => r.identity === 'host-t1')).toBe(true);
    expect(saved(agent.dataDir)).toMatchObject({ version: 2, hostId: 'host-t1', credential: 'fake-host-credential-0123456789' });
    expect(agent.identities.map((i) => i.credential)).toEqual(['fake-host-credential-0123456789']);
  });

  it('refuses (and logs) a TLS controller when in insecure mode, and a plaintext controller when not', async () => {
    const tls = await startFakeController({ validityMs: 3_600_000 });
    cleanups.push(tls.stop);
    const insecureAgent = await startReporter(tls, { insecure: true });
    const plain = await startFakeController({ validityMs: 3_600_000, insecure: true });
    cleanups.push(plain.stop);
    const tlsAgent = await startReporter(plain, { pin: caPin(plain.ca.certPem) });
    await sleep(1000);
    expect(tls.state.registers + plain.state.registers).toBe(0);
    expect(insecureAgent.logs.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([
      'controller unreachable (REMOTEGPU_GRPC_INSECURE=1: the controller must run with it too); retrying with backoff',
    ]);
    const unreachable = tlsAgent.logs.filter((l) => l.level >= 40);
    expect(unreachable).toHaveLength(1);
    expect(unreachable[0]!.reason).toMatch(/does not answer with TLS .*REMOTEGPU_GRPC_INSECURE=1/);
  });
});
