import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Cli } from '../cli.js';
import { call, callNoContent, type Schemas } from '../client.js';
import { command } from '../command.js';
import { pickOne } from '../pick.js';
import { CliError, EXIT } from '../errors.js';
import { allPages, PAGE_SIZE } from '../pages.js';
import { age, renderFields } from '../output.js';

type SshKey = Schemas['SshKey'];

/** The public keys `ssh-key add` looks for when given no path, in this order. */
const DEFAULT_KEYS = ['id_ed25519.pub', 'id_ecdsa.pub', 'id_rsa.pub'];

/** `ssh-key add|ls|rm`: the public keys installed in the user's environments. */
export function registerSshKeys(program: Command, cli: Cli): void {
  const keys = command(program, 'ssh-key', 'add, list and remove the SSH public keys installed in your environments').addHelpText('after', '\nExamples:\n  remotegpu ssh-key add\n  remotegpu ssh-key ls\n  remotegpu ssh-key rm laptop');
  command(keys, 'add [path]', 'add a public key (default: ~/.ssh/id_ed25519.pub, else id_ecdsa.pub, else id_rsa.pub)')
    .option('--name <name>', "what to call it (default: the key's comment)")
    .addHelpText(
      'after',
      `
The key is installed as /root/.ssh/authorized_keys in every environment you own (running ones
within seconds). A private key is refused before anything is sent.

Examples:
  remotegpu ssh-key add
  remotegpu ssh-key add ~/.ssh/work_ed25519.pub --name work-laptop`,
    )
    .action(async (path: string | undefined, options: { name?: string }) => addKey(cli, path, options.name));

  command(keys, 'ls', 'list your SSH public keys')
    .addHelpText('after', '\nExamples:\n  remotegpu ssh-key ls\n  remotegpu ssh-key ls --json')
    .action(async () => {
      const all = await allKeys(cli);
      await cli.list(all, [
        { header: 'id', cell: (k) => k.id, right: true },
        { header: 'name', cell: (k) => k.name },
        { header: 'fingerprint', cell: (k) => k.fingerprint },
        { header: 'type', cell: (k) => k.public_key.split(' ', 1)[0] },
        { header: 'age', cell: (k) => age(k.created_at) },
      ]);
    });

  command(keys, 'rm <key>', 'remove one of your SSH public keys (by id, name or fingerprint)')
    .addHelpText('after', '\nYour environments stop accepting it within seconds.\n\nExamples:\n  remotegpu ssh-key rm 3\n  remotegpu ssh-key rm laptop')
    .action(async (ref: string) => removeKey(cli, ref));
}

async function addKey(cli: Cli, path: string | undefined, name: string | undefined): Promise<void> {
  const file = path ?? defaultKey(cli);
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, EXIT.usage);
  }
  // A private key must never leave the machine: refuse before anything is sent.
  if (/PRIVATE KEY/.test(text)) throw new CliError(`${file} is a private key: pass the public one (${file}.pub)`, EXIT.usage);
  if (text.split('\n').length !== 1) throw new CliError(`${file} is not one OpenSSH public key line (like "ssh-ed25519 AAAA… you@laptop")`, EXIT.usage);
  const key = (await call(cli.client().POST('/api/v1/ssh-keys', { body: { public_key: text, ...(name === undefined ? {} : { name }) } }))).data;
  await cli.show(key, (k) => renderFields([['id', k.id], ['name', k.name], ['fingerprint', k.fingerprint]]));
  if (!cli.json) await cli.note(`Added ${file}: your environments accept it within seconds.`);
}

/** The first of ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub that exists. */
function defaultKey(cli: Cli): string {
  const dir = join(cli.io.env.HOME || homedir(), '.ssh');
  const found = DEFAULT_KEYS.map((f) => join(dir, f)).find((f) => existsSync(f));
  if (!found) throw new CliError(`no public key in ${dir} (${DEFAULT_KEYS.join(', ')}): create one with \`ssh-keygen -t ed25519\` or pass a path`, EXIT.usage);
  return found;
}

function allKeys(cli: Cli): Promise<SshKey[]> {
  const client = cli.client();
  return allPages((page) => client.GET('/api/v1/ssh-keys', { params: { query: { page, page_size: PAGE_SIZE } } }));
}

async function removeKey(cli: Cli, ref: string): Promise<void> {
  const key = pickOne(await allKeys(cli), ref, { what: 'SSH key', plural: 'SSH keys', id: (k) => k.id, names: (k) => [k.name, k.fingerprint], hint: '(see `remotegpu ssh-key ls`)' });
  await callNoContent(cli.client().DELETE('/api/v1/ssh-keys/{key_id}', { params: { path: { key_id: key.id } } }));
  await cli.note(`Removed key ${key.id} (${key.name}, ${key.fingerprint}).`);
}
