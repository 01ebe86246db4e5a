import { isIP } from 'node:net';
import { posix } from 'node:path';
import { z } from 'zod';
import { intVar, logLevelVar, parseEnv } from '../common/config.js';
import { DEFAULT_RECONNECT_MAX_MS } from '../common/reconnect.js';
import { caHashVar, configuredPin, joinTokenVar } from './join-token.js';
import { parseCidr } from './runtime/env-network.js';
import { MACHINE_ID_PATTERN } from './discovery/host.js';

const isHostPort = (v: string) => /^[^\s:,]+:\d{1,5}$/.test(v) || /^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(v);
const hostPort = (fallback: string) => z.string().default(fallback).refine(isHostPort, 'expected HOST:PORT');

/**
 * REMOTEGPU_CONTROLLER: one HOST:PORT, or several separated by commas (controller replicas; the
 * agent reports to one and fails over to the next). A name may resolve to several addresses.
 */
const controllerList = z
  .string()
  .default('127.0.0.1:9090')
  .transform((value, ctx): readonly string[] => {
    const addresses = value.split(',').map((a) => a.trim());
    if (addresses.some((a) => !isHostPort(a))) {
      ctx.addIssue({ code: 'custom', message: 'expected HOST:PORT, or several HOST:PORT separated by commas' });
      return z.NEVER;
    }
    return Object.freeze([...new Set(addresses)]);
  });

/**
 * Host directories datasets may be mounted from: absolute, normalized paths separated by `:` or
 * `,`; not `/`. Unset: none (the agent then mounts no dataset).
 */
const datasetRoots = z
  .string()
  .optional()
  .transform((value, ctx): readonly string[] => {
    const roots = (value ?? '').split(/[:,]/).map((r) => r.trim()).filter(Boolean);
    for (const root of roots) {
      const problem = datasetRootProblem(root);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }
    return Object.freeze([...new Set(roots)]);
  });

function datasetRootProblem(root: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (!root.startsWith('/') || /[\x00-\x1f\x7f]/.test(root)) return `${JSON.stringify(root)} must be an absolute path without control characters`;
  if (root.split('/').includes('..')) return `${JSON.stringify(root)} must not contain ".."`;
  const normalized = posix.normalize(root).replace(/(.)\/+$/, '$1');
  if (normalized !== root) return `${JSON.stringify(root)} is not normalized (did you mean ${JSON.stringify(normalized)}?)`;
  if (root === '/') return '"/" cannot be a dataset root: it would let environments mount the whole host; list the directories that hold datasets, e.g. /srv/datasets';
  return undefined;
}

/** Every environment variable the agent reads, with defaults. Documented in README.md. */
const schema = z.object({
  REMOTEGPU_CONTROLLER: controllerList,
  REMOTEGPU_RECONNECT_MAX_MS: intVar(DEFAULT_RECONNECT_MAX_MS, 100, 600_000),
  REMOTEGPU_JOIN_TOKEN: joinTokenVar,
  REMOTEGPU_CA_HASH: caHashVar,
  REMOTEGPU_GRPC_INSECURE: z.enum(['0', '1', 'false', 'true'], 'expected 1 or 0').default('0').transform((v) => v === '1' || v === 'true'),
  REMOTEGPU_AGENT_LISTEN: hostPort('0.0.0.0:9091'),
  REMOTEGPU_AGENT_METRICS_ADDR: z.string().refine(isHostPort, 'expected HOST:PORT (e.g. 10.0.0.5:9464)').optional(),
  REMOTEGPU_AGENT_ADVERTISE: z.string().regex(/^[^\s]+:\d{1,5}$/, 'expected HOST:PORT').optional(),
  REMOTEGPU_PUBLIC_ADDRESS: z.string().optional(),
  REMOTEGPU_PUBLISH_ADDRESS: z.string().refine((v) => isIP(v) !== 0, 'expected an IP address (0.0.0.0 for every address)').optional(),
  REMOTEGPU_DATA_DIR: z.string().default('./data'),
  REMOTEGPU_DATASET_ROOTS: datasetRoots,
  REMOTEGPU_GPU_MODE: z.enum(['auto', 'nvidia', 'cdi', 'devices']).default('auto'),
  REMOTEGPU_NVIDIA_SMI: z.string().default('nvidia-smi'),
  REMOTEGPU_FAKE_GPUS: z.string().optional(),
  REMOTEGPU_MACHINE_ID: z.string().regex(MACHINE_ID_PATTERN, 'expected 1-128 characters [A-Za-z0-9._-]').optional(),
  REMOTEGPU_REPORT_INTERVAL_MS: intVar(10_000, 100),
  REMOTEGPU_REPORT_JITTER_PERCENT: intVar(15, 0, 50),
  REMOTEGPU_DISCOVERY_INTERVAL_MS: intVar(30_000, 1_000),
  REMOTEGPU_PIDS_LIMIT: intVar(4096, 64),
  REMOTEGPU_CPU_CORES: intVar(0, 0, 4096),
  REMOTEGPU_SHM_BYTES: intVar(0, 0),
  DOCKER_HOST: z.string().default('unix:///var/run/docker.sock'),
  // 'true' is the label value of an agent without a namespace: a namespace may not take it.
  REMOTEGPU_NAMESPACE: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'expected 1-63 characters [a-z0-9_.-]')
    .refine((v) => v !== 'true', "'true' is what an agent without a namespace uses; pick another name")
    .optional(),
  REMOTEGPU_LOG_LEVEL: logLevelVar,
  REMOTEGPU_RUN_DIR: z.string().default('/run/remotegpu').refine((v) => v.startsWith('/'), 'expected an absolute path'),
  REMOTEGPU_NETWORK_POOL: cidrVar('10.213.0.0/16'),
  REMOTEGPU_NETWORK_SPARES: intVar(2, 0, 64),
  REMOTEGPU_BLOCK_METADATA: z.enum(['0', '1', 'false', 'true'], 'expected 1 or 0').default('1').transform((v) => v === '1' || v === 'true'),
  REMOTEGPU_DISK_RESERVE: z.string().regex(/^\d{1,2}(\.\d+)?%$/, 'expected a percentage below 100, e.g. 10%').default('10%').transform((v) => Number(v.slice(0, -1)) / 100),
  REMOTEGPU_ROOTFS_LIMIT: intVar(50 * 1024 ** 3, 0),
});

/** An IPv4 network "a.b.c.d/n" with n 8-24 (environments get /28 networks out of it). */
function cidrVar(fallback: string) {
  return z
    .string()
    .default(fallback)
    .refine((v) => {
      try {
        const { prefix } = parseCidr(v);
        return prefix >= 8 && prefix <= 24;
      } catch {
        return false;
      }
    }, 'expected an IPv4 network a.b.c.d/n with n between 8 and 24');
}

export interface AgentConfig {
  /** REMOTEGPU_CONTROLLER as configured (for logs): `controllers` joined by commas. */
  readonly controller: string;
  /** The controller addresses (HOST:PORT, names resolved at connect time), in the order they are tried. */
  readonly controllers: readonly string[];
  /** Ceiling of every wait before the agent tries the controller again (REMOTEGPU_RECONNECT_MAX_MS). */
  readonly reconnectMaxMs: number;
  /** The join token's secret part (what Register carries). */
  readonly joinToken: string | undefined;
  /** The cluster CA pin, "sha256:<hex>": from the join token or REMOTEGPU_CA_HASH. */
  readonly caPin: string | undefined;
  /** REMOTEGPU_GRPC_INSECURE=1: plaintext gRPC both ways, the host credential as a bearer secret. */
  readonly grpcInsecure: boolean;
  readonly listen: string;
  /** HOST:PORT of the Prometheus metrics listener (REMOTEGPU_AGENT_METRICS_ADDR); undefined: none. */
  readonly metricsListen: string | undefined;
  /** Address the controller uses to reach this agent; defaults to the public address + listen port. */
  readonly advertise: string | undefined;
  readonly publicAddress: string | undefined;
  /** REMOTEGPU_PUBLISH_ADDRESS: the host address containers' ports are published on; default from the public address (defaultPublishAddress). */
  readonly publishAddress: string | undefined;
  readonly dataDir: string;
  /** Host directories datasets may be bind-mounted from (REMOTEGPU_DATASET_ROOTS); empty: none. */
  readonly datasetRoots: readonly string[];
  readonly gpuMode: 'auto' | 'nvidia' | 'cdi' | 'devices';
  readonly nvidiaSmi: string;
  readonly fakeGpus: string | undefined;
  /** REMOTEGPU_MACHINE_ID: reported instead of /etc/machine-id (hosts without one, containers sharing one). */
  readonly machineId: string | undefined;
  readonly reportIntervalMs: number;
  /** Each pause between reports is spread by ± this fraction of itself, and the first report waits up to it of the interval (REMOTEGPU_REPORT_JITTER_PERCENT / 100). */
  readonly reportJitter: number;
  readonly discoveryIntervalMs: number;
  readonly pidsLimit: number;
  /** CPU cores offered to environments; 0 = every logical CPU the host has. */
  readonly cpuCores: number;
  /** /dev/shm size for every environment; 0 = half the environment's memory. */
  readonly shmBytes: number;
  readonly dockerHost: string;
  /** Set when several agents share one Docker engine: each manages only its namespace's containers. */
  readonly namespace: string | undefined;
  readonly logLevel: string;
  /**
   * Where the agent mounts environment volumes and dataset views (REMOTEGPU_RUN_DIR): a tmpfs, so a
   * host reboot empties it and Docker cannot start a container before the agent has restored them.
   */
  readonly runDir: string;
  /** IPv4 network the per-environment /28 bridge networks are cut from (REMOTEGPU_NETWORK_POOL). */
  readonly networkPool: string;
  /** Networks made ahead for new environments (REMOTEGPU_NETWORK_SPARES): a create does not wait for one. */
  readonly networkSpares: number;
  /** Drop environments' traffic to the cloud metadata address 169.254.169.254 (REMOTEGPU_BLOCK_METADATA). */
  readonly blockMetadata: boolean;
  /** Fraction of the data directory's disk kept free: new environments are refused below it (REMOTEGPU_DISK_RESERVE). */
  readonly diskReserve: number;
  /** Bytes a container's writable layer may hold before it is warned, then stopped; 0 = no limit (REMOTEGPU_ROOTFS_LIMIT). */
  readonly rootfsLimitBytes: number;
  /**
   * The agent process's own environment (live, not a copy), which its child processes inherit:
   * nvidia-smi, and PATH and DOCKER_HOST for `docker exec` terminals. Only this module reads
   * process.env.
   */
  readonly processEnv: NodeJS.ProcessEnv;
}

/**
 * Reads and validates the agent's configuration from `env` (default: the process environment).
 * Throws ConfigError (one line) when bad. Child processes always inherit `processEnv`.
 */
export function loadAgentConfig(env: Record<string, string | undefined> = process.env, processEnv: NodeJS.ProcessEnv = process.env): AgentConfig {
  const e = parseEnv(schema, env);
  return Object.freeze({
    controller: e.REMOTEGPU_CONTROLLER.join(','),
    controllers: e.REMOTEGPU_CONTROLLER,
    reconnectMaxMs: e.REMOTEGPU_RECONNECT_MAX_MS,
    joinToken: e.REMOTEGPU_JOIN_TOKEN?.secret,
    caPin: configuredPin(e.REMOTEGPU_JOIN_TOKEN, e.REMOTEGPU_CA_HASH),
    grpcInsecure: e.REMOTEGPU_GRPC_INSECURE,
    listen: e.REMOTEGPU_AGENT_LISTEN,
    metricsListen: e.REMOTEGPU_AGENT_METRICS_ADDR,
    advertise: e.REMOTEGPU_AGENT_ADVERTISE,
    publicAddress: e.REMOTEGPU_PUBLIC_ADDRESS,
    publishAddress: e.REMOTEGPU_PUBLISH_ADDRESS,
    dataDir: e.REMOTEGPU_DATA_DIR,
    datasetRoots: e.REMOTEGPU_DATASET_ROOTS,
    gpuMode: e.REMOTEGPU_GPU_MODE,
    nvidiaSmi: e.REMOTEGPU_NVIDIA_SMI,
    fakeGpus: e.REMOTEGPU_FAKE_GPUS,
    machineId: e.REMOTEGPU_MACHINE_ID,
    reportIntervalMs: e.REMOTEGPU_REPORT_INTERVAL_MS,
    reportJitter: e.REMOTEGPU_REPORT_JITTER_PERCENT / 100,
    discoveryIntervalMs: e.REMOTEGPU_DISCOVERY_INTERVAL_MS,
    pidsLimit: e.REMOTEGPU_PIDS_LIMIT,
    cpuCores: e.REMOTEGPU_CPU_CORES,
    shmBytes: e.REMOTEGPU_SHM_BYTES,
    dockerHost: e.DOCKER_HOST,
    namespace: e.REMOTEGPU_NAMESPACE,
    logLevel: e.REMOTEGPU_LOG_LEVEL,
    runDir: e.REMOTEGPU_RUN_DIR,
    networkPool: e.REMOTEGPU_NETWORK_POOL,
    networkSpares: e.REMOTEGPU_NETWORK_SPARES,
    blockMetadata: e.REMOTEGPU_BLOCK_METADATA,
    diskReserve: e.REMOTEGPU_DISK_RESERVE,
    rootfsLimitBytes: e.REMOTEGPU_ROOTFS_LIMIT,
    processEnv,
  });
}

/** REMOTEGPU_DATA_DIR alone (for `remotegpu-agent reset`, which must work whatever else is misconfigured). */
export function agentDataDir(env: Record<string, string | undefined> = process.env): string {
  return env.REMOTEGPU_DATA_DIR?.trim() || './data';
}
