import { performance } from 'node:perf_hooks';
import type { KyselyPlugin } from 'kysely';
import { pino } from 'pino';
import { openDatabase } from '../controller/db/database.js';
import { migrateToLatest } from '../controller/db/migrate.js';
import { QueuePlacer } from '../controller/environments/queue.js';
import { median, writeFigures } from './bench-util.js';

// One queue pass over many pending environments (embedded PGlite): 10 full hosts of 8 GPUs, 50
// users with 100 queued 2-GPU environments each (5000, none fits), and one user whose 1-GPU
// environment fits the one GPU freed; then the same entries blocked by their owners' quotas (1 GPU
// each) with room on a host. Prints the passes' times and statement counts.
// Run: npx tsx bench/queue-pass.ts [users] [per-user]

const USERS = Number(process.argv[2] ?? 50);
const PER_USER = Number(process.argv[3] ?? 100);
const GiB = 2 ** 30;

const { db, close } = await openDatabase({ dataDir: 'memory://' });
await migrateToLatest(db);
const image = await db.insertInto('images').values({ name: 'img', docker_ref: 'img' }).returning('id').executeTakeFirstOrThrow();
for (let h = 0; h < 10; h++) {
  const id = `host-${h}`;
  await db.insertInto('hosts').values({ id, hostname: id, public_address: '127.0.0.1', agent_address: '127.0.0.1:1', cpu_cores: 128, memory_bytes: 2 ** 40, disk_total_bytes: 2 ** 44, disk_free_bytes: 2 ** 44, last_report_at: new Date() }).execute();
  await db.insertInto('host_gpus').values(Array.from({ length: 8 }, (_, i) => ({ host_id: id, uuid: `GPU-${id}-${i}`, index: i, model: 'H100' }))).execute();
}
const users = [];
for (let u = 0; u <= USERS; u++) users.push((await db.insertInto('users').values({ name: `u${u}` }).returning('id').executeTakeFirstOrThrow()).id);
const row = (id: string, owner: number, gpu: number, status: 'pending' | 'running', at: number, hostId: string | null = null) => ({
  id, owner_id: owner, workspace_id: null, name: id, image_id: image.id, image: 'img', image_ref: 'img', image_ssh_port: 22, image_jupyter_port: null, image_data_path: '/root/workspace', cpu: 1, memory_bytes: GiB, gpu, storage_bytes: GiB, gpu_model: null,
  desired_state: 'running' as const, status, host_id: hostId, reserved_cpu: hostId ? 1 : 0, reserved_memory_bytes: hostId ? GiB : 0, reserved_storage_bytes: hostId ? GiB : 0,
  ssh_port: null, jupyter_port: null, jupyter_token: 't', idempotency_key: null, created_at: new Date(at),
});
// Every GPU held, one each, by the filler user (users[0]).
for (let h = 0; h < 10; h++) {
  for (let i = 0; i < 8; i++) {
    const id = `env-fill-${h}-${i}`;
    await db.insertInto('environments').values(row(id, users[0]!, 1, 'running', 0, `host-${h}`)).execute();
    await db.insertInto('gpu_reservations').values({ host_id: `host-${h}`, gpu_uuid: `GPU-host-${h}-${i}`, env_id: id }).execute();
  }
}
const t0 = Date.now() - 86_400_000;
const pending = [];
for (let u = 1; u <= USERS; u++) for (let i = 0; i < PER_USER; i++) pending.push(row(`env-q-${u}-${i}`, users[u]!, 2, 'pending', t0 + u * PER_USER + i));
for (let i = 0; i < pending.length; i += 500) await db.insertInto('environments').values(pending.slice(i, i + 500)).execute();
await db.insertInto('environments').values(row('env-late', users[0]!, 1, 'pending', Date.now())).execute();

let statements = 0;
const counter: KyselyPlugin = { transformQuery: (a) => (statements++, a.node), transformResult: async (a) => a.result };
const placer = new QueuePlacer({ db: db.withPlugin(counter), logger: pino({ level: 'silent' }), ports: { ssh: { from: 30000, to: 39999 }, jupyter: { from: 40000, to: 49999 } } });

// Passes where nothing fits (the first also writes nothing: every reason is "waiting for capacity").
const idle: number[] = [];
for (let i = 0; i < 5; i++) {
  statements = 0;
  const start = performance.now();
  const pass = await placer.pass();
  idle.push(performance.now() - start);
  if (pass.placed !== 0) throw new Error('nothing should fit');
}
const idleStatements = statements;
// One GPU frees: the late 1-GPU environment, behind 5000 that do not fit, is placed in one pass.
await db.deleteFrom('gpu_reservations').where('env_id', '=', 'env-fill-0-0').execute();
await db.updateTable('environments').set({ desired_state: 'deleted', status: 'deleting', reserved_cpu: 0, reserved_memory_bytes: 0 }).where('id', '=', 'env-fill-0-0').execute();
statements = 0;
const start = performance.now();
const placing = await placer.pass();
const placingMs = performance.now() - start;
const placingStatements = statements;

// Quota-blocked: every queued user may hold 1 GPU, and host-0 frees all its GPUs, so each 2-GPU
// entry fits a host but not its owner's quota. The first such pass rewrites every reason; later
// ones try each user's quota once, passing over the user's other entries in memory.
for (let u = 1; u <= USERS; u++) await db.insertInto('user_quotas').values({ user_id: users[u]!, gpus: 1 }).execute();
await db.deleteFrom('gpu_reservations').where('host_id', '=', 'host-0').execute();
await db.updateTable('environments').set({ desired_state: 'deleted', status: 'deleting', reserved_cpu: 0, reserved_memory_bytes: 0 }).where('host_id', '=', 'host-0').execute();
const quota: { ms: number; statements: number }[] = [];
for (let i = 0; i < 4; i++) {
  statements = 0;
  const t = performance.now();
  const pass = await placer.pass();
  quota.push({ ms: Math.round((performance.now() - t) * 10) / 10, statements });
  if (pass.placed !== 0) throw new Error('the quota should refuse every entry');
}

const figures = {
  pending: pending.length + 1,
  idlePassMsMedian: Math.round(median(idle) * 10) / 10,
  idlePassStatements: idleStatements,
  placingPass: { ...placing, ms: Math.round(placingMs * 10) / 10, statements: placingStatements },
  quotaBlockedFirstPass: quota[0],
  quotaBlockedPassMsMedian: median(quota.slice(1).map((q) => q.ms)),
  quotaBlockedPassStatements: quota[3]!.statements,
};
console.log(figures);
console.log(`written to ${writeFigures('queue-pass', figures)}`);
await close();
