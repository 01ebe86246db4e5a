import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import type { FaultCluster } from './cluster.js';
import { checkInvariants } from './invariants.js';

// What every scenario shares: the deadline, the closing checks, and which process holds what.

const run = promisify(execFile);

/** How long a scenario waits for the platform to converge after a fault (a bound, not a target). */
export const CONVERGE_DEADLINE_MS = Number(process.env.REMOTEGPU_FAULTS_DEADLINE_MS ?? 90_000);

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The end of every scenario: no process exited on its own, and the invariants hold (polled for a
 * few seconds: a removal or a report may still be on its way when the statuses converged).
 */
export async function expectSound(cluster: FaultCluster): Promise<void> {
  expect(cluster.crashes(), await cluster.describe()).toEqual([]);
  let problems: string[] = [];
  const until = Date.now() + 20_000;
  do {
    problems = await checkInvariants(cluster).catch((err: Error) => [`invariant check failed: ${err.message}`]);
    if (problems.length === 0) return;
    await sleep(500);
  } while (Date.now() < until);
  expect(problems, await cluster.describe()).toEqual([]);
}

/** Creates `count` environments (alternating agents, 0 or 1 GPU) and waits until all run; returns their ids. */
export async function runningEnvs(cluster: FaultCluster, count: number, prefix: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await cluster.createEnv(`${prefix}-${i}`, Math.floor(i / 2) % 2, i % cluster.agents.length);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    ids.push(res.body.data.env_id as string);
  }
  await cluster.waitFor(`${count} environments running`, () => cluster.allIn(ids), CONVERGE_DEADLINE_MS);
  return ids;
}

/** Processes (pids) with an established TCP connection whose local port is `port`. */
async function pidsOnLocalPort(port: number): Promise<number[]> {
  const { stdout } = await run('ss', ['-tnpH', 'state', 'established', `( sport = :${port} )`]);
  return [...stdout.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
}

/** Processes (pids) with an established TCP connection to remote port `port`. */
async function pidsDialling(port: number): Promise<number[]> {
  const { stdout } = await run('ss', ['-tnpH', 'state', 'established', `( dport = :${port} )`]);
  return [...stdout.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
}

/** The controller (index) whose connection holds the reconciler's advisory lock, or -1. */
export async function lockHolder(cluster: FaultCluster): Promise<number> {
  const { rows } = await cluster.pool!.query<{ client_port: number }>(
    `SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = $1 AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [0x72677075],
  );
  for (const { client_port } of rows) {
    const pids = await pidsOnLocalPort(client_port);
    const i = cluster.controllers.findIndex((c) => c.running && c.pid !== undefined && pids.includes(c.pid));
    if (i >= 0) return i;
  }
  return -1;
}

/** The controller (index) most agents hold a gRPC connection to (the one they report to), or -1. */
export async function reportTarget(cluster: FaultCluster): Promise<number> {
  const agentPids = cluster.agents.map((a) => a.pid).filter((p): p is number => p !== undefined);
  let best = -1;
  let most = 0;
  for (const [i, port] of cluster.grpcPorts.entries()) {
    const n = (await pidsDialling(port)).filter((p) => agentPids.includes(p)).length;
    if (n > most) [best, most] = [i, n];
  }
  return best;
}
