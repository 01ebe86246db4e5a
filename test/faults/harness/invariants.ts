import { testDocker } from '../../helpers/docker.js';
import type { FaultCluster } from './cluster.js';

// The one invariant checker every scenario ends with, in SQL (the scenario's database) and Docker
// (the engine, through the agents' label namespaces). It returns every violation it finds.

interface Container {
  id: string;
  name: string;
  envId: string | undefined;
  namespace: string;
  state: string;
  ports: string[];
}

async function containersOf(namespaces: readonly string[]): Promise<Container[]> {
  const docker = testDocker();
  const out: Container[] = [];
  for (const ns of namespaces) {
    for (const c of await docker.listContainers({ all: true, filters: { label: [`remotegpu.managed=${ns}`] } })) {
      out.push({
        id: c.Id.slice(0, 12),
        name: (c.Names[0] ?? '').replace(/^\//, ''),
        envId: c.Labels['remotegpu.env-id'],
        namespace: ns,
        state: c.State,
        ports: (c.Ports ?? []).filter((p) => p.PublicPort).map((p) => `${p.IP}:${p.PublicPort}`),
      });
    }
  }
  return out;
}

/** Ports two running containers publish on overlapping addresses (a wildcard overlaps every address). */
function publishedTwice(running: readonly Container[]): string[] {
  const byPort = new Map<string, Map<string, string>>();
  for (const c of running) {
    for (const p of c.ports) {
      const at = p.lastIndexOf(':');
      const port = p.slice(at + 1);
      const ip = p.slice(0, at);
      const users = byPort.get(port) ?? new Map<string, string>();
      if (!users.has(c.name) || ip === '0.0.0.0' || ip === '::') users.set(c.name, ip);
      byPort.set(port, users);
    }
  }
  const clashes: string[] = [];
  for (const [port, users] of byPort) {
    const ips = [...users.values()];
    if (users.size > 1 && (ips.some((ip) => ip === '0.0.0.0' || ip === '::') || new Set(ips).size < ips.length)) clashes.push(`${port}: ${[...users.keys()].join(', ')}`);
  }
  return clashes;
}

/** Containers named like the scenario's environments that carry no remotegpu label at all. */
async function unlabelled(envIds: readonly string[]): Promise<string[]> {
  if (envIds.length === 0) return [];
  const wanted = new Set(envIds.map((id) => `remotegpu-${id}`));
  const all = await testDocker().listContainers({ all: true });
  return all
    .filter((c) => c.Names.some((n) => wanted.has(n.replace(/^\//, '').replace(/_.*$/, ''))) && !c.Labels['remotegpu.managed'])
    .map((c) => `${c.Names[0]} (${c.Id.slice(0, 12)})`);
}

/**
 * Checks, after a scenario converged: no GPU or port reserved twice (in the database, and no host
 * address and port published by two containers), reservations only for live environments,
 * exactly one container per running environment (and none for a removed one), no container of
 * the namespaces without a known environment, no unlabelled leftovers, no environment in `error`
 * whose container runs. Returns the violations ([] when all hold).
 */
export async function checkInvariants(cluster: FaultCluster): Promise<string[]> {
  const q = async (text: string) => (await cluster.pool!.query(text)).rows as Record<string, unknown>[];
  const problems: string[] = [];
  const say = (what: string, rows: unknown[]) => {
    if (rows.length > 0) problems.push(`${what}: ${JSON.stringify(rows)}`);
  };

  say('GPU reserved twice', await q('SELECT gpu_uuid, array_agg(env_id) AS envs FROM gpu_reservations GROUP BY gpu_uuid HAVING count(*) > 1'));
  say('port reserved twice on a host', await q('SELECT host_id, port, array_agg(env_id) AS envs FROM port_reservations GROUP BY host_id, port HAVING count(*) > 1'));
  // A removed environment (deleted, removal confirmed) holds nothing; a stopped or pending one no GPU.
  say(
    'GPU reservation of an environment that is not live',
    await q(`SELECT r.env_id, r.gpu_uuid, e.status, e.deleted_at FROM gpu_reservations r LEFT JOIN environments e ON e.id = r.env_id
             WHERE e.id IS NULL OR (e.deleted_at IS NOT NULL AND e.status <> 'deleting') OR e.status IN ('stopped', 'pending')`),
  );
  say(
    'port reservation of an environment that is not live',
    await q(`SELECT r.env_id, r.port, e.status, e.deleted_at FROM port_reservations r LEFT JOIN environments e ON e.id = r.env_id
             WHERE e.id IS NULL OR (e.deleted_at IS NOT NULL AND e.status <> 'deleting') OR e.status = 'pending'`),
  );

  const envs = await cluster.envs();
  const containers = await containersOf(cluster.namespaces);
  const byEnv = new Map<string, Container[]>();
  for (const c of containers) {
    if (!c.envId) continue;
    byEnv.set(c.envId, [...(byEnv.get(c.envId) ?? []), c]);
  }
  const known = new Map(envs.map((e) => [e.id, e]));
  for (const e of envs) {
    const mine = byEnv.get(e.id) ?? [];
    const live = e.deleted_at === null;
    if (live && e.status === 'running' && (mine.length !== 1 || mine[0]!.state !== 'running')) {
      problems.push(`running environment ${e.id} has ${mine.length} container(s): ${JSON.stringify(mine)}`);
    }
    if (live && mine.length > 1) problems.push(`environment ${e.id} (${e.status}) has ${mine.length} containers: ${JSON.stringify(mine)}`);
    if (!live && e.status !== 'deleting' && mine.length > 0) problems.push(`removed environment ${e.id} still has containers: ${JSON.stringify(mine)}`);
    if (e.status === 'error' && mine.some((c) => c.state === 'running')) problems.push(`environment ${e.id} is in error while its container runs (${e.status_reason})`);
  }
  say('container of a namespace without a known environment', containers.filter((c) => !c.envId || !known.has(c.envId)));
  say('host address and port published by two containers', publishedTwice(containers.filter((x) => x.state === 'running')));
  say('unlabelled container left behind', await unlabelled(envs.map((e) => e.id)));
  return problems;
}
