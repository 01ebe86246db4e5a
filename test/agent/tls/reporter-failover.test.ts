import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { caPin, createCa, type KeyAndCert } from '../../../common/pki.js';
import { HostFacts } from '../../../gen/remotegpu/v1/types.js';
import { identityAtStart } from '../../../agent/identity.js';
import { Reporter } from '../../../agent/reporter.js';
import type { LookupAll } from '../../../agent/controller-targets.js';
import { freePort } from '../../helpers/docker.js';
import { emptyRuntime } from './fixtures.js';
import { JOIN_SECRET, startFakeController, type FakeController } from './fake-controller.js';

// The reporter given several controller addresses (replicas sharing one cluster CA, each with its
// own certificate), over real TLS: it registers with the first that answers, reports to one, and
// when that one goes away reports to the next with the same identity, never registering again. A
// name resolving to several addresses works the same way.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function replicas(count: number, bind: (i: number) => { host?: string; port?: number } = () => ({})): Promise<{ ca: KeyAndCert; fakes: FakeController[] }> {
  const ca = await createCa('replicated cluster CA');
  const fakes: FakeController[] = [];
  for (let i = 0; i < count; i++) {
    const fake = await startFakeController({ validityMs: 3_600_000, ca, bind: bind(i) });
    cleanups.push(fake.stop);
    fakes.push(fake);
  }
  return { ca, fakes };
}

async function startReporter(controllers: readonly string[], ca: KeyAndCert, lookup?: LookupAll) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'rgpu-failover-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const logs: { msg: string; controller?: string }[] = [];
  const settings = { dataDir, joinToken: JOIN_SECRET, caPin: caPin(ca.certPem), grpcInsecure: false };
  const reporter = new Reporter({
    controllers,
    ...(lookup ? { lookup } : {}),
    joinToken: settings.joinToken,
    caPin: settings.caPin,
    insecure: false,
    identity: await identityAtStart(settings),
    dataDir,
    intervalMs: 100,
    runtime: emptyRuntime(),
    logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) }),
    facts: async () => HostFacts.fromPartial({ hostname: 'gpu-box-1', cpuCores: 8 }),
    sshReady: () => false,
    onIdentity: () => {},
    backoffMinMs: 50,
    backoffMaxMs: 200,
  });
  cleanups.push(() => reporter.stop());
  await reporter.start();
  return { reporter, logs };
}

describe('reporter with several controllers', () => {
  it('registers with the first controller that answers, fails over when the one it reports to stops, and never registers again', async () => {
    const { ca, fakes } = await replicas(2);
    const [a, b] = fakes as [FakeController, FakeController];
    // The first address refuses connections (nothing listens there): registration goes to the next one.
    const dead = `127.0.0.1:${await freePort()}`;
    const agent = await startReporter([dead, a.address, b.address], ca);
    await until('reports to A', () => a.state.reports.length >= 3);
    expect(a.state.registers).toBe(1);
    expect(b.state.reports).toHaveLength(0); // it stays with the one that answers

    a.stop();
    await until('reports to B', () => b.state.reports.length >= 3);
    expect(b.state.reports.every((r) => r.identity === 'host-t1')).toBe(true);
    expect(a.state.registers + b.state.registers).toBe(1);
    const connected = agent.logs.filter((l) => l.msg === 'connected to the controller');
    expect(connected.map((l) => l.controller)).toEqual([a.address, b.address]);
  });

  it('tries every address a controller name resolves to', async () => {
    const port = await freePort();
    // Two replicas on one port, on two loopback addresses; the name resolves to both.
    const { ca, fakes } = await replicas(2, (i) => ({ host: `127.0.0.${i + 1}`, port }));
    const [a, b] = fakes as [FakeController, FakeController];
    const lookups: string[] = [];
    const lookup: LookupAll = async (host) => {
      lookups.push(host);
      return host === 'controllers.remotegpu.test' ? ['127.0.0.1', '127.0.0.2'] : [];
    };
    await startReporter([`controllers.remotegpu.test:${port}`], ca, lookup);
    await until('reports to the first address', () => a.state.reports.length >= 3);
    a.stop();
    await until('reports to the second address', () => b.state.reports.length >= 3);
    expect(b.state.reports.every((r) => r.identity === 'host-t1')).toBe(true);
    expect(a.state.registers + b.state.registers).toBe(1);
    expect(lookups[0]).toBe('controllers.remotegpu.test');
  });
});
