import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { loadControllerConfig } from '../controller/config.js';
import { startController } from '../controller/server.js';
import { sleep, writeFigures } from './bench-util.js';

// RSS and CPU of the agent process (as operators run it) while idle with 10 running environments.
// Run: npx tsx bench/agent-idle.ts [seconds] [--dist]  (--dist: the built agent, `npm run build` first)

const run = promisify(execFile);
const SECONDS = Number(process.argv[2] ?? 60);
const DIST = process.argv.includes('--dist');
const ADMIN = 'bench-admin-token-0123456789abcdef';
const JOIN = 'bench-join-token-0123456789abcdef';
const dir = mkdtempSync(path.join(tmpdir(), 'rgpu-bench-agent-'));
await run('bash', ['scripts/build-test-image.sh']);
// Volume mount points on /dev/shm (a tmpfs already): the agent mounts no tmpfs of its own.
const runDir = mkdtempSync('/dev/shm/rgpu-bench-run-');
const controller = await startController(
  loadControllerConfig({ REMOTEGPU_DATA_DIR: dir, REMOTEGPU_HTTP_PORT: '0', REMOTEGPU_GRPC_PORT: '0', REMOTEGPU_HTTP_HOST: '127.0.0.1', REMOTEGPU_GRPC_HOST: '127.0.0.1', REMOTEGPU_BOOTSTRAP_TOKEN: ADMIN, REMOTEGPU_JOIN_TOKEN: JOIN, REMOTEGPU_SSH_PORT_RANGE: '37000-37099', REMOTEGPU_JUPYTER_PORT_RANGE: '37100-37199' }),
  pino({ level: 'silent' }),
);
await controller.database.db.insertInto('images').values({ name: 'devbox:bench', docker_ref: 'remotegpu/devbox:1', jupyter_port: 8888 }).execute();
const agent = spawn(process.execPath, DIST ? ['dist/agent/main.js'] : ['--import', 'tsx', 'agent/main.ts'], {
  env: {
    PATH: process.env.PATH,
    REMOTEGPU_CONTROLLER: `127.0.0.1:${controller.grpcPort}`,
    REMOTEGPU_JOIN_TOKEN: controller.bootstrapJoinToken,
    REMOTEGPU_AGENT_LISTEN: '127.0.0.1:0',
    REMOTEGPU_PUBLIC_ADDRESS: '127.0.0.1',
    REMOTEGPU_DATA_DIR: path.join(dir, 'agent'),
    REMOTEGPU_RUN_DIR: runDir,
    REMOTEGPU_FAKE_GPUS: path.resolve('test/fixtures/nvidia-smi/a40_x10_nvidia-smi-q.txt'),
    REMOTEGPU_LOG_LEVEL: 'warn',
    REMOTEGPU_NAMESPACE: `bench-${process.pid}`,
    REMOTEGPU_CPU_CORES: '16', // this machine may have 2 cores; the environments idle
  },
  stdio: 'ignore',
});
const api = async (method: string, p: string, body?: unknown) => {
  const res = await fetch(`${controller.httpUrl}${p}`, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return (await res.json()) as { data: { items: unknown[]; env_id: string; status: string } };
};
const ids: string[] = [];
const procStat = () => {
  const fields = readFileSync(`/proc/${agent.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime, clock ticks
};
const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))?.[1] ?? 0);
try {
  while ((await api('GET', '/api/v1/admin/hosts')).data.items.length === 0) await sleep(200);
  for (let i = 0; i < 10; i++) ids.push((await api('POST', '/api/v1/environments', { name: `idle-${i}`, image: 'devbox:bench', cpu: 1, memory: 128 * 2 ** 20, gpu: 1, storage: 2 ** 30 })).data.env_id);
  for (const id of ids) while ((await api('GET', `/api/v1/environments/${id}`)).data.status !== 'running') await sleep(200);
  await sleep(10_000); // let start-up work (host keys, SSH readiness probes) settle
  const ticks = Number((await run('getconf', ['CLK_TCK'])).stdout.trim());
  const cpu0 = procStat();
  const t0 = performance.now();
  const rss: number[] = [];
  while (performance.now() - t0 < SECONDS * 1000) {
    rss.push(rssKiB());
    await sleep(1000);
  }
  const cpuSeconds = (procStat() - cpu0) / ticks;
  const wall = (performance.now() - t0) / 1000;
  const figures = {
    environments: ids.length,
    seconds: Math.round(wall),
    reportIntervalMs: 10000,
    rssMiB: { min: Math.round(Math.min(...rss) / 1024), max: Math.round(Math.max(...rss) / 1024), last: Math.round(rss.at(-1)! / 1024) },
    cpuPercentOfOneCore: Number(((100 * cpuSeconds) / wall).toFixed(2)),
    agent: DIST ? 'node dist/agent/main.js (built)' : 'tsx agent/main.ts (TypeScript compiled in-process)',
    note: 'GPU usage is read through the fake nvidia-smi (a Node child process per report, not counted here)',
  };
  console.log(`agent idle with ${ids.length} environments over ${figures.seconds} s: RSS ${figures.rssMiB.min}-${figures.rssMiB.max} MiB, CPU ${figures.cpuPercentOfOneCore}% of one core`);
  console.log(`written to ${writeFigures('agent-idle', figures)}`);
} finally {
  for (const id of ids) await api('DELETE', `/api/v1/environments/${id}`).catch(() => {});
  await sleep(3000);
  agent.kill('SIGTERM');
  for (const id of ids) await run('docker', ['rm', '-f', `remotegpu-${id}`]).catch(() => {});
  for (const id of ids) await run('docker', ['volume', 'rm', '-f', `remotegpu-${id}-data`]).catch(() => {});
  // Networks (spares included) and the volumes' mounts the agent left.
  await run('sh', ['-c', `docker network rm $(docker network ls -q --filter label=remotegpu.managed=bench-${process.pid}) 2>/dev/null; true`]);
  await run('sh', ['-c', `findmnt -rn -o TARGET | grep '^${runDir}/' | sort -r | xargs -r -n1 umount -l; true`]);
  await controller.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
}
process.exit(0);
