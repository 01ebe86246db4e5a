import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import si from 'systeminformation';
import { discoverHost } from '../agent/discovery/host.js';
import { fakeNvidiaSmiPath } from '../agent/discovery/fake-gpus.js';
import { discoverGpus } from '../agent/discovery/nvidia-smi.js';
import { median, writeFigures } from './bench-util.js';

// Event-loop delay while the agent discovers its host (every REMOTEGPU_DISCOVERY_INTERVAL_MS, 30 s
// by default) and its GPUs with the fake nvidia-smi: the systeminformation calls discoverHost made
// before (si.cpu, si.mem, si.osInfo, si.networkInterfaces, si.fsSize: execSync inside) against
// today's discoverHost (node:os and asynchronous reads). Figures: max and p99 of
// perf_hooks.monitorEventLoopDelay (10 ms resolution) over each discovery, and how long it took.
// systeminformation ran a shell per network interface (and nmcli) synchronously whenever the set of
// interfaces changed (a bridge and a veth come and go with each environment), and `hostname -f`
// (a DNS lookup), `cat /proc/cpuinfo` and `cat /proc/mounts` synchronously on every scan: the
// first round shows the cold scan, the maximum over all rounds is what an agent meets.
// With --envs=N (root), it runs in a network namespace of its own (unshare --net) holding what N
// environments add to a host: a bridge and a veth pair each (the host's own network is untouched).
// Run: npx tsx bench/discovery-event-loop.ts [rounds] [--envs=N]

const ROUNDS = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 10);
const ENVS = Number(/^--envs=(\d+)$/.exec(process.argv.find((a) => a.startsWith('--envs=')) ?? '')?.[1] ?? 0);
if (ENVS > 0 && !process.argv.includes('--inner')) {
  const links = Array.from({ length: ENVS }, (_, i) => `ip link add br-bench${i} type bridge && ip link add veth${i} type veth peer name vp${i} && ip link set veth${i} master br-bench${i} && ip addr add 10.${200 + Math.floor(i / 250)}.${i % 250}.1/24 dev br-bench${i} && ip link set br-bench${i} up && ip link set veth${i} up && ip link set vp${i} up`);
  const args = [...process.argv.slice(1), '--inner'].map((a) => `'${a}'`).join(' ');
  const child = spawnSync('unshare', ['--net', 'sh', '-c', `ip link set lo up && ${links.join(' && ')} && exec '${process.execPath}' --import tsx ${args}`], { stdio: 'inherit' });
  process.exit(child.status ?? 1);
}
const dataDir = mkdtempSync(path.join(tmpdir(), 'rgpu-bench-discovery-'));
const gpuOptions = { nvidiaSmiPath: fakeNvidiaSmiPath(), timeoutMs: 20_000, env: { ...process.env, REMOTEGPU_FAKE_GPUS: path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt') } };

/** What discoverHost called before this change (its result is not used here). */
const before = () => Promise.all([si.cpu(), si.mem(), si.osInfo(), si.networkInterfaces(), si.fsSize()]);
const after = () => discoverHost(dataDir);

interface Round {
  maxMs: number;
  p99Ms: number;
  tookMs: number;
}

async function measure(host: () => Promise<unknown>): Promise<Round> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  // The histogram records from its second sample on: let it take one before the work starts.
  await new Promise((r) => setTimeout(r, 25));
  const t0 = performance.now();
  await host();
  await discoverGpus(gpuOptions);
  const tookMs = performance.now() - t0;
  // One more timer turn so a block at the very end is sampled too.
  await new Promise((r) => setTimeout(r, 20));
  h.disable();
  return { maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6, tookMs };
}

const summary = (rounds: readonly Round[]) => ({
  maxMs: Math.round(Math.max(...rounds.map((r) => r.maxMs))),
  medianMaxMs: Math.round(median(rounds.map((r) => r.maxMs))),
  medianP99Ms: Math.round(median(rounds.map((r) => r.p99Ms))),
  medianTookMs: Math.round(median(rounds.map((r) => r.tookMs))),
});

const results: Record<'before' | 'after', Round[]> = { before: [], after: [] };
for (let i = 0; i < ROUNDS; i++) {
  // Alternate, so both see the same machine load.
  results.before.push(await measure(before));
  results.after.push(await measure(after));
}
rmSync(dataDir, { recursive: true, force: true });
const interfaces = (await si.networkInterfaces()).length;
const figures = { rounds: ROUNDS, simulatedEnvironments: ENVS, interfaces, before: summary(results.before), after: summary(results.after) };
console.log(`host + GPU discovery, ${ROUNDS} rounds, ${interfaces} network interfaces: event-loop delay (ms)`);
console.log('                      max  median max  median p99  median duration');
for (const k of ['before', 'after'] as const) {
  const s = figures[k];
  console.log(`${k === 'before' ? 'before (systeminformation)' : 'after (node:os, async)    '}  ${String(s.maxMs).padStart(4)}  ${String(s.medianMaxMs).padStart(10)}  ${String(s.medianP99Ms).padStart(10)}  ${String(s.medianTookMs).padStart(15)}`);
}
console.log(`figures: ${writeFigures(`discovery-event-loop${ENVS > 0 ? `-${ENVS}-envs` : ''}`, figures)}`);
