import type { Command } from 'commander';
import type { Cli } from '../cli.js';
import { call, callNoContent, type Schemas } from '../client.js';
import { command } from '../command.js';
import { pickOne, resolve } from '../pick.js';
import { age, type Column } from '../output.js';
import { allDatasets } from './catalog.js';

type Mount = Schemas['Mount'];
type Dataset = Schemas['Dataset'];

const MOUNT_COLUMNS: readonly Column<Mount>[] = [
  { header: 'dataset', cell: (m) => m.name },
  { header: 'id', cell: (m) => m.dataset_id, right: true },
  { header: 'path', cell: (m) => m.mount_path },
  { header: 'mode', cell: (m) => (m.readonly ? 'ro' : 'rw') },
  { header: 'age', cell: (m) => age(m.created_at) },
];

/** env mount, unmount, mounts. */
export function registerEnvMounts(env: Command, cli: Cli): void {
  command(env, 'mount <env> <dataset>', 'mount a dataset (id or name, see `remotegpu datasets`) into an environment')
    .requiredOption('--at <path>', 'where in the environment, e.g. /data/imagenet')
    .option('--read-write', 'mount it writable (only datasets an admin marked writable)')
    .addHelpText(
      'after',
      `
A running environment gets the mount through a brief recreate of its container; its data stays.

Examples:
  remotegpu env mount dev imagenet --at /data/imagenet
  remotegpu env mount dev 2 --at /data/scratch --read-write`,
    )
    .action(async (ref: string, datasetRef: string, options: { at: string; readWrite?: boolean }) => {
      const e = await cli.environment(ref);
      const dataset = await findDataset(cli, datasetRef);
      const body = { dataset_id: dataset.id, mount_path: options.at, readonly: !options.readWrite };
      await call(cli.client().POST('/api/v1/environments/{env_id}/datasets', { params: { path: { env_id: e.env_id } }, body }));
      await cli.note(`Mounted ${dataset.name} (${dataset.id}) at ${options.at} in ${e.name} (${e.env_id}), ${options.readWrite ? 'read-write' : 'read-only'}.`);
    });

  command(env, 'unmount <env> <dataset>', 'unmount a dataset (id or name) from an environment')
    .addHelpText('after', '\nExamples:\n  remotegpu env unmount dev imagenet')
    .action(async (ref: string, datasetRef: string) => {
      const e = await cli.environment(ref);
      const mounts = await mountsOf(cli, e.env_id);
      const mount = pickOne(mounts, datasetRef, {
        what: 'mounted dataset',
        plural: 'mounted datasets',
        id: (m) => m.dataset_id,
        names: (m) => [m.name],
        hint: `in ${e.name} (see \`remotegpu env mounts ${e.name}\`)`,
      });
      await callNoContent(cli.client().DELETE('/api/v1/environments/{env_id}/datasets/{dataset_id}', { params: { path: { env_id: e.env_id, dataset_id: mount.dataset_id } } }));
      await cli.note(`Unmounted ${mount.name} (${mount.dataset_id}) from ${mount.mount_path} in ${e.name} (${e.env_id}).`);
    });

  command(env, 'mounts <env>', 'list the datasets mounted in an environment')
    .addHelpText('after', '\nExamples:\n  remotegpu env mounts dev\n  remotegpu env mounts dev --json')
    .action(async (ref: string) => {
      const e = await cli.environment(ref);
      const mounts = await mountsOf(cli, e.env_id);
      if (!cli.json && mounts.length === 0) return cli.note(`No datasets mounted in ${e.name}.`);
      await cli.list(mounts, MOUNT_COLUMNS);
    });
}

async function mountsOf(cli: Cli, envId: string): Promise<Mount[]> {
  return (await call(cli.client().GET('/api/v1/environments/{env_id}/datasets', { params: { path: { env_id: envId } } }))).data.items;
}

/** A dataset id as the API takes one in a path: a positive PostgreSQL integer. */
function isDatasetId(ref: string): boolean {
  return /^[1-9][0-9]{0,9}$/.test(ref) && Number(ref) <= 2_147_483_647;
}

/**
 * A dataset the caller may mount, by id (GET /datasets/{id}, which sees what the listing sees) or
 * by name (every page of GET /datasets).
 */
function findDataset(cli: Cli, ref: string): Promise<Dataset> {
  const client = cli.client();
  return resolve(ref, {
    isId: isDatasetId,
    byId: async (id) => (await call(client.GET('/api/v1/datasets/{dataset_id}', { params: { path: { dataset_id: Number(id) } } }))).data,
    list: () => allDatasets(client),
    naming: { what: 'dataset', plural: 'datasets', id: (d) => d.id, names: (d) => [d.name], hint: 'that you may mount (see `remotegpu datasets`)' },
  });
}
