import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The real controller as a process of its own (node with the tsx loader, one process, so its
// /proc/<pid>/stat is the controller's CPU and /proc/<pid>/status its RSS).

const CLK_TCK = 100; // Linux's USER_HZ on every platform Node runs on

export interface ControllerProcess {
  readonly pid: number;
  readonly httpUrl: string;
  readonly grpcAddress: string;
  /** "sha256:…" of the cluster CA (the join token's pin). */
  readonly caPin: string;
  /** CPU seconds (user + system) used so far. */
  cpuSeconds(): number;
  /** Resident set size now, bytes. */
  rssBytes(): number;
  /** The largest RSS sampled so far (sampled every second), bytes. */
  peakRssBytes(): number;
  stop(): Promise<void>;
}

export interface ControllerSettings {
  readonly databaseUrl: string;
  readonly dataDir: string;
  readonly adminToken: string;
  readonly joinToken: string;
  readonly insecure: boolean;
  readonly logFile: string;
  /** Extra environment variables (REMOTEGPU_*), e.g. pool sizes of a newer controller. */
  readonly env?: Record<string, string>;
}

/** Starts the controller and resolves once its REST API and gRPC port are announced. */
export async function startControllerProcess(s: ControllerSettings): Promise<ControllerProcess> {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const child = spawn(process.execPath, [...(process.env.BENCH_CONTROLLER_NODE_ARGS ?? '').split(' ').filter(Boolean), '--import', 'tsx', 'controller/main.ts'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      DATABASE_URL: s.databaseUrl,
      REMOTEGPU_DATA_DIR: s.dataDir,
      REMOTEGPU_HTTP_HOST: '127.0.0.1',
      REMOTEGPU_HTTP_PORT: '0',
      REMOTEGPU_GRPC_HOST: '127.0.0.1',
      REMOTEGPU_GRPC_PORT: '0',
      REMOTEGPU_BOOTSTRAP_TOKEN: s.adminToken,
      REMOTEGPU_JOIN_TOKEN: s.joinToken,
      REMOTEGPU_GRPC_INSECURE: s.insecure ? '1' : '0',
      REMOTEGPU_LOG_LEVEL: 'warn',
      ...s.env,
    },
  });
  const log = createWriteStream(s.logFile);
  child.stdout!.pipe(log);
  let stderr = '';
  const ready = new Promise<{ httpUrl: string; grpcPort: string; caPin: string }>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      log.write(chunk);
      if (stderr.length < 100_000) stderr += chunk.toString();
      const api = /REST API on (\S+), agents connect to gRPC port (\d+)/.exec(stderr);
      const pin = /cluster CA (sha256:[0-9a-f]+)/.exec(stderr);
      if (api && pin) resolve({ httpUrl: api[1]!, grpcPort: api[2]!, caPin: pin[1]! });
    });
    child.once('exit', (code) => reject(new Error(`controller exited (${code}) before it was ready; see ${s.logFile}:\n${stderr.slice(-2000)}`)));
  });
  const announced = await ready;
  const pid = child.pid!;
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, safeRss(pid))), 1000);
  sampler.unref();
  return {
    pid,
    httpUrl: announced.httpUrl,
    grpcAddress: `127.0.0.1:${announced.grpcPort}`,
    caPin: announced.caPin,
    cpuSeconds: () => cpuSecondsOf(pid),
    rssBytes: () => {
      const rss = safeRss(pid);
      peak = Math.max(peak, rss);
      return rss;
    },
    peakRssBytes: () => Math.max(peak, safeRss(pid)),
    stop: () => stopChild(child, sampler),
  };
}

/** utime + stime of a process, seconds. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** VmRSS of a process, bytes (0 once it is gone). */
export function safeRss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU use of `pid` over `ms`, as a percentage of one core. */
export async function cpuPercentOver(pid: number, ms: number): Promise<number> {
  const c0 = cpuSecondsOf(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  return Math.round(((cpuSecondsOf(pid) - c0) / ((performance.now() - t0) / 1000)) * 1000) / 10;
}

async function stopChild(child: ChildProcess, sampler: NodeJS.Timeout): Promise<void> {
  clearInterval(sampler);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * CPU seconds of a local PostgreSQL server (the postmaster listening on `port`, as
 * scripts/start-postgres.sh starts it, and its backends), or undefined when none is found.
 */
export function postgresCpuSeconds(port: number): number | undefined {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return undefined;
  }
  const read = (pid: string, file: string) => {
    try {
      return readFileSync(`/proc/${pid}/${file}`, 'utf8');
    } catch {
      return '';
    }
  };
  const postmaster = pids.find((pid) => {
    const cmd = read(pid, 'cmdline');
    return cmd.includes('postgres') && cmd.includes(`port=${port}`);
  });
  if (!postmaster) return undefined;
  let total = 0;
  for (const pid of pids) {
    const stat = read(pid, 'stat');
    if (!stat) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (pid === postmaster || fields[1] === postmaster) total += (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  }
  return total;
}
