import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../common/logger.js';
import { startLocalPlatform } from '../scripts/local-platform.js';
import { median, sleep, writeFigures } from './bench-util.js';

// Median time from POST /api/v1/environments to status "running" (1 GPU, devbox image), against a
// raw `docker run -d` of the same image with the same published ports on the same machine.
// Run: npx tsx bench/create-latency.ts [runs]

const run = promisify(execFile);
const RUNS = Number(process.argv[2] ?? 7);
const ADMIN = 'bench-admin-token-0123456789abcdef';
const dir = mkdtempSync(path.join(tmpdir(), 'rgpu-bench-'));
// Volume and dataset mount points on /dev/shm (a tmpfs already): the agent mounts no tmpfs of its own.
const runDir = mkdtempSync('/dev/shm/rgpu-bench-run-');
const platform = await startLocalPlatform(
  {
    PATH: process.env.PATH,
    REMOTEGPU_DATA_DIR: dir,
    REMOTEGPU_RUN_DIR: runDir,
    REMOTEGPU_HTTP_PORT: '0',
    REMOTEGPU_GRPC_PORT: '0',
    REMOTEGPU_AGENT_LISTEN: '127.0.0.1:0',
    REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN,
    REMOTEGPU_FAKE_GPUS: path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt'),
    REMOTEGPU_SSH_PORT_RANGE: '36000-36099',
    REMOTEGPU_JUPYTER_PORT_RANGE: '36100-36199',
    REMOTEGPU_NAMESPACE: `bench-${process.pid}`,
  },
  createLogger({ name: 'bench', level: 'warn' }),
);
const base = platform.controller.httpUrl;
const api = async (method: string, p: string, body?: unknown) => {
  const res = await fetch(`${base}${p}`, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
};

try {
  while ((await api('GET', '/api/v1/admin/hosts')).body.data.items.length === 0) await sleep(100);
  const platformMs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const created = await api('POST', '/api/v1/environments', { name: `bench-${i}`, image: 'devbox:1', cpu: 1, memory: 2 ** 30, gpu: 1, storage: 2 ** 30 });
    const id = created.body.data.env_id;
    while ((await api('GET', `/api/v1/environments/${id}`)).body.data.status !== 'running') await sleep(10);
    platformMs.push(performance.now() - t0);
    await api('DELETE', `/api/v1/environments/${id}`);
    // Until the delete is done (container, network, volume): the next create does not race it.
    while ((await api('GET', `/api/v1/environments/${id}`)).status !== 404) await sleep(50);
    while ((await run('docker', ['ps', '-aq', '--filter', `label=remotegpu.env-id=${id}`])).stdout.trim() !== '') await sleep(50);
    // A quiet system for the next create: the reconciler pass that deleted this one has ended.
    await sleep(1000);
  }
  const dockerMs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const name = `rgpu-bench-raw-${process.pid}-${i}`;
    const t0 = performance.now();
    await run('docker', ['run', '-d', '--name', name, '-p', `127.0.0.1:${36200 + i}:22`, '-p', `127.0.0.1:${36300 + i}:8888`, '--memory', String(2 ** 30), '--cpus', '1', 'remotegpu/devbox:1']);
    dockerMs.push(performance.now() - t0);
    await run('docker', ['rm', '-f', name]);
  }
  const figures = {
    runs: RUNS,
    postToRunningMs: { median: Math.round(median(platformMs)), samples: platformMs.map(Math.round) },
    rawDockerRunMs: { median: Math.round(median(dockerMs)), samples: dockerMs.map(Math.round) },
    note: 'POST→running includes scheduling, the reservation transaction, the reconciler call over gRPC, the loop volume (sparse file, mkfs.ext4, mount), the network, container create/start and the status write; docker run -d includes create and start only (default bridge, no volume)',
  };
  console.log(`POST → running: median ${figures.postToRunningMs.median} ms over ${RUNS} runs (${figures.postToRunningMs.samples.join(', ')})`);
  console.log(`docker run -d:  median ${figures.rawDockerRunMs.median} ms over ${RUNS} runs (${figures.rawDockerRunMs.samples.join(', ')})`);
  console.log(`written to ${writeFigures('create-latency', figures)}`);
} finally {
  await platform.stop();
  // The spare networks the agent keeps ready for its namespace.
  await run('sh', ['-c', `docker network rm $(docker network ls -q --filter label=remotegpu.managed=bench-${process.pid}) 2>/dev/null; true`]);
  rmSync(dir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
}
process.exit(0);
