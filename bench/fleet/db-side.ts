import pg from 'pg';

// What the fleet bench does in the database directly: seed rows for the read test (the API has no
// bulk import) and check correctness after the run. Everything else goes through REST and gRPC.

export interface Correctness {
  /** GPU UUIDs held by more than one reservation (must be 0). */
  readonly gpusReservedTwice: number;
  /** (host, port) pairs reserved more than once (must be 0). */
  readonly portsReservedTwice: number;
  /** Environments placed by the bench whose GPU reservations do not match their `gpu` (must be 0). */
  readonly envsWithWrongGpuCount: number;
  /** Present, healthy GPUs of the fleet's hosts that no reservation holds. */
  readonly freeGpus: number;
  readonly totalGpus: number;
  /** Environments placed on the fleet that no create answered with (a 5xx that created one after all; must be 0). */
  readonly placedWithoutAnswer: number;
  /** Reservations on a host other than the environment's own (must be 0). */
  readonly reservationsOffHost: number;
}

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const one = async (c: pg.Client, text: string, values: unknown[] = []) => Number(Object.values((await c.query(text, values)).rows[0] as object)[0]);

/** Double allocations and leftovers, straight from the tables. `hostname` prefix: the fleet's hosts. */
export function checkCorrectness(url: string, hostnamePrefix: string, answered: ReadonlySet<string>): Promise<Correctness> {
  return withClient(url, async (c) => {
    const fleet = `SELECT id FROM hosts WHERE hostname LIKE $1`;
    const like = [`${hostnamePrefix}%`];
    return {
      gpusReservedTwice: await one(c, `SELECT count(*) FROM (SELECT gpu_uuid FROM gpu_reservations GROUP BY gpu_uuid HAVING count(*) > 1) d`),
      portsReservedTwice: await one(c, `SELECT count(*) FROM (SELECT host_id, port FROM port_reservations GROUP BY host_id, port HAVING count(*) > 1) d`),
      envsWithWrongGpuCount: await one(
        c,
        `SELECT count(*) FROM environments e WHERE e.host_id IN (${fleet}) AND e.status = 'running'
           AND e.gpu <> (SELECT count(*) FROM gpu_reservations r WHERE r.env_id = e.id)`,
        like,
      ),
      freeGpus: await one(
        c,
        `SELECT count(*) FROM host_gpus g WHERE g.host_id IN (${fleet}) AND g.present AND g.health = 'healthy'
           AND NOT EXISTS (SELECT 1 FROM gpu_reservations r WHERE r.gpu_uuid = g.uuid)`,
        like,
      ),
      totalGpus: await one(c, `SELECT count(*) FROM host_gpus WHERE host_id IN (${fleet}) AND present AND health = 'healthy'`, like),
      placedWithoutAnswer: (await c.query(`SELECT id FROM environments WHERE host_id IN (${fleet})`, like)).rows.filter((r: { id: string }) => !answered.has(r.id)).length,
      reservationsOffHost: await one(
        c,
        `SELECT (SELECT count(*) FROM gpu_reservations r JOIN environments e ON e.id = r.env_id WHERE r.host_id <> e.host_id)
              + (SELECT count(*) FROM port_reservations r JOIN environments e ON e.id = r.env_id WHERE r.host_id <> e.host_id)`,
      ),
    };
  });
}

/**
 * Inserts `count` environments owned by `ownerId`, as the API leaves a stopped environment that was
 * never placed: status and desired state `stopped`, no host, no reservations (so they need no
 * capacity and leave the placement's figures alone), generations equal (nothing for the
 * reconciler), created over the past `count` seconds. Ids `env-s<9 digits>`. Returns the ids.
 */
export async function seedEnvironments(url: string, ownerId: number, imageName: string, count: number): Promise<string[]> {
  const batch = 20_000;
  await withClient(url, async (c) => {
    const image = (await c.query(`SELECT id, name, docker_ref, ssh_port, jupyter_port, data_path FROM images WHERE name = $1`, [imageName])).rows[0] as Record<string, unknown>;
    for (let from = 1; from <= count; from += batch) {
      const to = Math.min(count, from + batch - 1);
      await c.query(
        `INSERT INTO environments (id, owner_id, workspace_id, name, description, image_id, image, image_ref, image_ssh_port,
             image_jupyter_port, image_data_path, cpu, memory_bytes, gpu, storage_bytes, gpu_model, desired_state, status,
             host_id, ssh_port, jupyter_port, jupyter_token, created_at, updated_at, stopped_at)
         SELECT 'env-s' || lpad(i::text, 9, '0'), $1, NULL, 'seeded-' || i, '', $2, $3, $4, $5, $6, $7, 1, 1073741824, 1,
             1073741824, NULL, 'stopped', 'stopped', NULL, NULL, NULL, md5(i::text),
             now() - make_interval(secs => $8 - i), now() - make_interval(secs => $8 - i), now() - make_interval(secs => $8 - i)
         FROM generate_series($9::int, $10::int) AS i`,
        [ownerId, image.id, image.name, image.docker_ref, image.ssh_port, image.jupyter_port, image.data_path, count + 3600, from, to],
      );
    }
    // A table this size in production has been vacuumed by autovacuum long ago: the visibility map
    // (index-only walks) and the statistics are as they would be, not those of a bulk load a second old.
    await c.query('VACUUM ANALYZE');
  });
  return Array.from({ length: count }, (_, i) => `env-s${String(i + 1).padStart(9, '0')}`);
}

/**
 * The PostgreSQL baseline: single-row INSERTs (each its own transaction) from `concurrency`
 * connections for `ms`, into a scratch table. Inserts per second.
 */
export async function postgresInsertBaseline(url: string, concurrency: number, ms: number): Promise<number> {
  await withClient(url, (c) => c.query('CREATE TABLE IF NOT EXISTS bench_baseline (id bigserial PRIMARY KEY, a int, b text, at timestamptz DEFAULT now())'));
  const clients = await Promise.all(
    Array.from({ length: concurrency }, async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return c;
    }),
  );
  let done = 0;
  const t0 = performance.now();
  const deadline = t0 + ms;
  await Promise.all(
    clients.map(async (c) => {
      while (performance.now() < deadline) {
        await c.query({ name: 'bench-insert', text: 'INSERT INTO bench_baseline (a, b) VALUES ($1, $2)', values: [done, 'x'] });
        done++;
      }
    }),
  );
  const perSecond = done / ((performance.now() - t0) / 1000);
  await Promise.all(clients.map((c) => c.end()));
  await withClient(url, (c) => c.query('DROP TABLE bench_baseline'));
  return Math.round(perSecond);
}
