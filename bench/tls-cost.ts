import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Server } from '@grpc/grpc-js';
import { createLogger } from '../common/logger.js';
import { loadControllerConfig } from '../controller/config.js';
import { openDatabase } from '../controller/db/database.js';
import { migrateToLatest } from '../controller/db/migrate.js';
import type { AgentEnvSpec } from '../controller/hosts/types.js';
import { ControllerServices } from '../controller/services.js';
import { ClusterTrust } from '../controller/trust/cluster-trust.js';
import { AgentServiceClient } from '../gen/remotegpu/v1/agent.js';
import { tlsChannelOptions } from '../common/grpc-tls.js';
import { startTestAgent } from '../test/helpers/test-agent.js';
import { median, writeFigures } from './bench-util.js';

// The cost of mutual TLS on the controller↔agent channel, on loopback: ReportStatus (agent →
// controller, with the database write behind it) and ApplyEnvironment (controller → agent) on a
// warm connection, and the first call on a new connection (TCP + TLS handshake), with TLS and with
// REMOTEGPU_GRPC_INSECURE=1. The agent is the in-process test agent (a real gRPC server that keeps
// containers in memory), so Docker's own time does not hide the transport's.
// Run: npx tsx bench/tls-cost.ts [calls]

const CALLS = Number(process.argv[2] ?? 400);
const logger = createLogger({ name: 'bench', level: 'silent' });

const spec: AgentEnvSpec = {
  envId: 'env-bench0001',
  image: 'remotegpu/devbox:1',
  cpuCores: 4,
  memoryBytes: 16 * 2 ** 30,
  gpuUuids: [],
  storageBytes: 50 * 2 ** 30,
  dataPath: '/root/workspace',
  ports: [{ name: 'ssh', containerPort: 22, hostPort: 30001 }],
  sshAuthorizedKeys: ['ssh-ed25519 AAAA bench'],
  mounts: [],
  env: {},
  labels: {},
  jupyterToken: 'jt',
  desiredState: 'running',
};

function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => Number(s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(3));
  return { n: s.length, p50: Number(median(s).toFixed(3)), p90: at(0.9), p99: at(0.99) };
}

async function time(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

async function measure(insecure: boolean) {
  const dir = mkdtempSync(path.join(tmpdir(), 'rgpu-tls-bench-'));
  const database = await openDatabase({ dataDir: dir });
  await migrateToLatest(database.db);
  const config = loadControllerConfig({
    REMOTEGPU_DATA_DIR: dir,
    REMOTEGPU_JOIN_TOKEN: 'bench-join-token-0123456789',
    REMOTEGPU_GRPC_INSECURE: insecure ? '1' : '0',
    REMOTEGPU_LOG_LEVEL: 'silent',
  });
  const trust = await ClusterTrust.create({ db: database.db, config, logger });
  const services = new ControllerServices({ db: database.db, config, logger, trust });
  const server = new Server();
  services.registerGrpc(server);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', trust.serverCredentials, (e, p) => (e ? reject(e) : resolve(p))));
  const agent = await startTestAgent({ controllerAddress: `127.0.0.1:${port}`, joinToken: 'bench-join-token-0123456789', caPem: trust.ca.certPem, insecure, gpus: 8 });
  try {
    const api = await services.agents.forHost(agent.hostId);
    await time(50, () => agent.report()); // warm-up
    await time(50, () => api.apply(spec));
    const report = await time(CALLS, () => agent.report());
    const apply = await time(CALLS, () => api.apply(spec));
    const firstCall = await time(Math.min(60, CALLS), async () => {
      const client = new AgentServiceClient(agent.address, trust.agentCredentials(agent.hostId), tlsChannelOptions({ kind: 'host', hostId: agent.hostId }, insecure));
      const md = insecure ? (await import('../common/grpc.js')).bearerMetadata(trust.hostCredential(agent.hostId)) : new (await import('@grpc/grpc-js')).Metadata();
      await new Promise<void>((resolve, reject) => client.inspectEnvironment({ envId: spec.envId }, md, (e) => (e ? reject(e) : resolve())));
      client.close();
    });
    return { report: stats(report), apply: stats(apply), newConnectionInspect: stats(firstCall) };
  } finally {
    await agent.close();
    await services.stop();
    server.forceShutdown();
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const tls = await measure(false);
const plaintext = await measure(true);
const figures = { calls: CALLS, unit: 'ms', tls, plaintext };
console.log(`TLS cost on loopback (${CALLS} calls each, ms p50/p90/p99):`);
for (const what of ['report', 'apply', 'newConnectionInspect'] as const) {
  const t = tls[what];
  const p = plaintext[what];
  console.log(`  ${what.padEnd(21)} TLS ${t.p50}/${t.p90}/${t.p99}   plaintext ${p.p50}/${p.p90}/${p.p99}`);
}
console.log(`written to ${writeFigures('tls-cost', figures)}`);
process.exit(0);
