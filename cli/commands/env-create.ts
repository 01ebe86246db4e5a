import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import type { Cli, Environment } from '../cli.js';
import { call, type Schemas } from '../client.js';
import { command } from '../command.js';
import { environmentFields } from '../env-format.js';
import { CliError, EXIT } from '../errors.js';
import { pause } from '../../common/pause.js';
import { parseBytes, parseCount, parseDuration } from '../units.js';
import { waitFor } from '../wait.js';

interface CreateOptions {
  image: string;
  gpu: string;
  gpuModel?: string;
  cpu: string;
  memory: string;
  storage?: string;
  description?: string;
  workspace?: string;
  queue?: boolean;
  wait?: boolean;
  timeout: string;
  quiet?: boolean;
}

/** Tries of a create that got no answer (connection refused or reset, 502-504): same key each time. */
const CREATE_TRIES = 3;

export function registerEnvCreate(env: Command, cli: Cli): void {
  command(env, 'create <name>', 'create an environment; with --wait, wait until it runs')
    .requiredOption('--image <image>', 'a catalog image (see `remotegpu images`), e.g. devbox:1')
    .requiredOption('--cpu <cores>', 'CPU cores')
    .requiredOption('--memory <size>', 'memory: 512Mi, 16Gi, 64G, ...')
    .option('--gpu <count>', 'GPUs', '0')
    .option('--gpu-model <text>', 'only hosts whose GPU model contains this text, e.g. A40 or H100')
    .option('--storage <size>', 'the data volume: 100Gi, 1Ti, ... (default: the API\'s, 50 GiB)')
    .option('--description <text>', 'a line about what it is for')
    .option('--workspace <id>', 'create it in this workspace (its members see it; its quota counts it)')
    .option('--queue', 'when nothing fits now, queue it as pending until room frees (else: exit 5)')
    .option('--wait', 'wait until it is running, showing its status on stderr')
    .option('--timeout <duration>', 'how long --wait waits: 90s, 10m, 1h (then exit 7; the environment stays)', '10m')
    .option('-q, --quiet', 'print only its id')
    .addHelpText(
      'after',
      `
Sizes take binary (Ki, Mi, Gi, Ti) or decimal (K, M, G, T) units. Each create sends an
Idempotency-Key, and a create that got no answer is retried with the same key: it never makes two.

Examples:
  remotegpu env create dev --image devbox:1 --gpu 2 --cpu 4 --memory 16Gi --storage 100Gi --wait
  remotegpu env create train --image devbox:1 --gpu 8 --gpu-model H100 --cpu 32 --memory 256Gi --queue
  ID=$(remotegpu env create ci-$RUN --image devbox:1 --cpu 1 --memory 2Gi --wait -q)`,
    )
    .action(async (name: string, options: CreateOptions) => create(cli, name, options));
}

async function create(cli: Cli, name: string, options: CreateOptions): Promise<void> {
  // Every option is checked before anything is sent: a typo creates nothing.
  const body: Schemas['CreateEnvironment'] = {
    name,
    image: options.image,
    cpu: parseCount(options.cpu, '--cpu', 1),
    memory: parseBytes(options.memory, '--memory'),
    gpu: parseCount(options.gpu, '--gpu', 0),
    ...(options.gpuModel !== undefined ? { gpu_model: options.gpuModel } : {}),
    ...(options.storage !== undefined ? { storage: parseBytes(options.storage, '--storage') } : {}),
    ...(options.description !== undefined ? { description: options.description } : {}),
    ...(options.workspace !== undefined ? { workspace_id: parseCount(options.workspace, '--workspace', 1) } : {}),
    ...(options.queue ? { queue: true } : {}),
  };
  const timeoutMs = parseDuration(options.timeout, '--timeout');
  let env = await post(cli, body);
  // With --wait the progress line says the same.
  if (!options.wait && !options.quiet && !cli.json) await cli.note(`Created ${env.name} (${env.env_id}), ${env.status}${env.status_reason ? `: ${env.status_reason}` : ''}.`);
  if (options.wait) env = (await waitFor(cli, env, 'running', timeoutMs))!;
  if (options.quiet) return cli.out(env.env_id);
  await cli.show(env, environmentFields);
}

/** POST /environments with one Idempotency-Key for every try (a retry answers 200 with the first one's environment). */
async function post(cli: Cli, body: Schemas['CreateEnvironment']): Promise<Environment> {
  const key = randomUUID();
  const client = cli.client();
  for (let attempt = 1; ; attempt++) {
    try {
      return (await call(client.POST('/api/v1/environments', { body, params: { header: { 'Idempotency-Key': key } } }))).data;
    } catch (err) {
      if (!(err instanceof CliError) || err.exitCode !== EXIT.unavailable || attempt >= CREATE_TRIES) throw err;
      await pause(1000 * attempt, new AbortController().signal);
    }
  }
}
