import type { Command } from 'commander';
import type { Cli } from '../cli.js';
import type { ApiClient, Schemas } from '../client.js';
import { command } from '../command.js';
import { allPages, PAGE_SIZE } from '../pages.js';
import { age } from '../output.js';

/** images, datasets: what a user can pick from when creating an environment or mounting data. */
export function registerCatalog(program: Command, cli: Cli): void {
  command(program, 'images', 'list the image catalog (the names `env create --image` accepts)')
    .addHelpText(
      'after',
      `
Examples:
  remotegpu images
  remotegpu images --json | jq -r '.[].name'`,
    )
    .action(async () => {
      const client = cli.client();
      const images = await allPages((page) => client.GET('/api/v1/images', { params: { query: { page, page_size: PAGE_SIZE } } }));
      await cli.list(images, [
        { header: 'name', cell: (i) => i.name },
        { header: 'jupyter', cell: (i) => (i.jupyter_port === null ? 'no' : 'yes') },
        { header: 'data path', cell: (i) => i.data_path },
        { header: 'description', cell: (i) => i.description },
      ]);
    });

  command(program, 'datasets', 'list the datasets you may mount (public ones, your own, your workspaces\')')
    .addHelpText(
      'after',
      `
Mount one into an environment with \`remotegpu env mount ENV DATASET --at /data/NAME\`.

Examples:
  remotegpu datasets
  remotegpu datasets --json`,
    )
    .action(async () => {
      await cli.list(await allDatasets(cli.client()), [
        { header: 'id', cell: (d) => d.id, right: true },
        { header: 'name', cell: (d) => d.name },
        { header: 'scope', cell: (d) => d.scope },
        { header: 'mount', cell: (d) => (d.writable ? 'read-write' : 'read-only') },
        { header: 'age', cell: (d) => age(d.created_at) },
        { header: 'description', cell: (d) => d.description },
      ]);
    });
}

/** Every dataset the caller may mount, all pages (`datasets`, and `env mount` by name). */
export function allDatasets(client: ApiClient): Promise<Schemas['Dataset'][]> {
  return allPages((page) => client.GET('/api/v1/datasets', { params: { query: { page, page_size: PAGE_SIZE } } }));
}
