import type { Command } from 'commander';
import type { Cli } from '../cli.js';
import { call, callNoContent, type ApiClient, type Schemas } from '../client.js';
import { command } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { age, renderFields } from '../output.js';
import { allPages, PAGE_SIZE } from '../pages.js';
import { parseCount } from '../units.js';

type User = Schemas['User'];

/** `admin users create|ls` and `admin tokens create|ls|revoke USER`. */
export function registerAdminUsers(admin: Command, cli: Cli): void {
  const users = command(admin, 'users', 'create and list users').addHelpText('after', '\nExamples:\n  remotegpu admin users create alice\n  remotegpu admin users ls --json');
  command(users, 'create <name>', 'create a user (then give them a token: `admin tokens create NAME`)')
    .option('--admin', 'make them an admin (default: a plain user)')
    .option('--email <email>', 'their email address')
    .addHelpText(
      'after',
      `
NAME: 1 to 64 letters, digits, ".", "_" or "-".

Examples:
  remotegpu admin users create alice --email alice@example.com
  remotegpu admin users create ops --admin`,
    )
    .action(async (name: string, options: { admin?: boolean; email?: string }) => {
      const body = { name, role: options.admin ? ('admin' as const) : ('user' as const), ...(options.email !== undefined ? { email: options.email } : {}) };
      const user = (await call(cli.client().POST('/api/v1/admin/users', { body }))).data;
      await cli.show(user, renderUser);
      if (!cli.json) await cli.note(`Give ${user.name} a token with: remotegpu admin tokens create ${user.name}`);
    });
  command(users, 'ls', 'list users, disabled ones included')
    .addHelpText('after', '\nExamples:\n  remotegpu admin users ls\n  remotegpu admin users ls --json')
    .action(async () => {
      await cli.list(await allUsers(cli.client()), [
        { header: 'id', cell: (u) => u.id, right: true },
        { header: 'name', cell: (u) => u.name },
        { header: 'role', cell: (u) => u.role },
        { header: 'email', cell: (u) => u.email },
        { header: 'age', cell: (u) => age(u.created_at) },
        { header: 'disabled', cell: (u) => (u.disabled_at ? `${age(u.disabled_at)} ago` : '') },
      ]);
    });
  registerTokens(admin, cli);
}

function registerTokens(admin: Command, cli: Cli): void {
  const tokens = command(admin, 'tokens', "create, list and revoke a user's API tokens (USER: their name or id)").addHelpText('after', '\nExamples:\n  TOKEN=$(remotegpu admin tokens create alice --name laptop)\n  remotegpu admin tokens ls alice\n  remotegpu admin tokens revoke alice 3');
  command(tokens, 'create <user>', 'create an API token for a user and print it (shown this once)')
    .option('--name <name>', 'what the token is for, to tell tokens apart', 'cli')
    .option('--expires-in-days <days>', 'days until it expires (default: never)')
    .addHelpText(
      'after',
      `
Only the token is printed on stdout (a note on stderr says it is shown once), so a script can
capture it; with --json the whole answer is printed, the token in "token". It is stored hashed:
nobody can see it again. Pass it on to the user, who signs in with \`remotegpu login\`.

Examples:
  remotegpu admin tokens create alice --name laptop
  TOKEN=$(remotegpu admin tokens create alice --expires-in-days 90)
  remotegpu admin tokens create alice --json | jq -r .prefix`,
    )
    .action(async (ref: string, options: { name: string; expiresInDays?: string }) => {
      const client = cli.client();
      const user = await resolveUser(client, ref);
      const body = {
        name: options.name,
        ...(options.expiresInDays !== undefined ? { expires_in_days: parseCount(options.expiresInDays, '--expires-in-days', 1) } : {}),
      };
      const created = (await call(client.POST('/api/v1/admin/users/{user_id}/tokens', { params: { path: { user_id: user.id } }, body }))).data;
      await cli.show(created, (c) => c.token);
      const expiry = created.expires_at ? `expires ${created.expires_at}` : 'never expires';
      await cli.note(`Token ${created.id} "${created.name}" for ${user.name} (${expiry}): it is shown only this once; store it now.`);
    });
  command(tokens, 'ls <user>', "list a user's API tokens (their prefixes, never the tokens)")
    .addHelpText('after', '\nExamples:\n  remotegpu admin tokens ls alice\n  remotegpu admin tokens ls 7 --json')
    .action(async (ref: string) => {
      const client = cli.client();
      const user = await resolveUser(client, ref);
      const list = await allPages((page) =>
        client.GET('/api/v1/admin/users/{user_id}/tokens', { params: { path: { user_id: user.id }, query: { page, page_size: PAGE_SIZE } } }),
      );
      await cli.list(list, [
        { header: 'id', cell: (t) => t.id, right: true },
        { header: 'name', cell: (t) => t.name },
        { header: 'prefix', cell: (t) => `${t.prefix}…` },
        { header: 'age', cell: (t) => age(t.created_at) },
        { header: 'last used', cell: (t) => (t.last_used_at ? `${age(t.last_used_at)} ago` : 'never') },
        { header: 'expires', cell: (t) => t.expires_at ?? 'never' },
        { header: 'state', cell: (t) => (t.revoked_at ? 'revoked' : t.expires_at && Date.parse(t.expires_at) <= Date.now() ? 'expired' : 'active') },
      ]);
    });
  command(tokens, 'revoke <user> <token-id>', 'revoke one of a user\'s API tokens (it stops working at once)')
    .addHelpText('after', '\nTOKEN-ID: the ID column of `admin tokens ls USER`.\n\nExamples:\n  remotegpu admin tokens revoke alice 12')
    .action(async (ref: string, tokenId: string) => {
      const id = parseCount(tokenId, 'TOKEN-ID', 1);
      const client = cli.client();
      const user = await resolveUser(client, ref);
      await callNoContent(client.DELETE('/api/v1/admin/users/{user_id}/tokens/{token_id}', { params: { path: { user_id: user.id, token_id: id } } }));
      await cli.note(`Token ${id} of ${user.name} revoked.`);
    });
}

export function allUsers(client: ApiClient): Promise<User[]> {
  return allPages((page) => client.GET('/api/v1/admin/users', { params: { query: { page, page_size: PAGE_SIZE } } }));
}

/** The user an argument names: their name, or else their numeric id. */
async function resolveUser(client: ApiClient, ref: string): Promise<User> {
  const users = await allUsers(client);
  const user = users.find((u) => u.name === ref) ?? (/^\d+$/.test(ref) ? users.find((u) => u.id === Number(ref)) : undefined);
  if (!user) throw new CliError(`no user named or with id ${JSON.stringify(ref)} (see \`remotegpu admin users ls\`)`, EXIT.notFound);
  return user;
}

function renderUser(u: User): string {
  return renderFields([
    ['user', u.name],
    ['id', u.id],
    ['role', u.role],
    ['email', u.email],
    ['created', u.created_at],
    ['disabled', u.disabled_at],
  ]);
}
