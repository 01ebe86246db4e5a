import type { Command } from 'commander';
import type { Cli } from '../cli.js';
import { apiClient, call, isTokenText } from '../client.js';
import { CliError, EXIT } from '../errors.js';
import { renderFields } from '../output.js';
import { command } from '../command.js';
import { readSecret } from '../prompt.js';

/** login, logout, whoami, context ls|use. */
export function registerAuth(program: Command, cli: Cli): void {
  command(program, 'login', 'sign in to a controller with an API token and save it as a context')
    .requiredOption('--url <url>', 'the controller, e.g. https://gpu.example.com or http://127.0.0.1:8080')
    .option('--name <context>', 'the context to save it as (default: the URL\'s host:port, or --context)')
    .addHelpText(
      'after',
      `
The token is read from a prompt (not echoed) or, when stdin is not a terminal, from stdin. It is
checked against the controller, then saved in ~/.config/remotegpu/config.json (mode 0600) and the
context becomes the current one.

Examples:
  remotegpu login --url https://gpu.example.com
  echo "$TOKEN" | remotegpu login --url http://127.0.0.1:8080 --name local`,
    )
    .action(async (options: { url: string; name?: string }) => login(cli, options));

  command(program, 'logout', 'forget the current context\'s token (or --context\'s)')
    .addHelpText('after', '\nExamples:\n  remotegpu logout\n  remotegpu --context staging logout')
    .action(async () => {
    const config = cli.config();
    const name = cli.contextOption ?? config.current;
    if (!name || !config.contexts[name]) throw new CliError('not signed in', EXIT.auth);
    delete config.contexts[name];
    if (config.current === name) config.current = Object.keys(config.contexts)[0] ?? null;
    cli.saveConfig(config);
    await cli.note(`Signed out of ${name}.${config.current ? ` Current context: ${config.current}.` : ''}`);
  });

  command(program, 'whoami', 'show who the token belongs to, their quota and the controller')
    .addHelpText('after', '\nExamples:\n  remotegpu whoami\n  remotegpu whoami --json')
    .action(async () => {
      const ctx = cli.context();
      const me = (await call(cli.client().GET('/api/v1/me'))).data;
      await cli.show(me, (m) =>
        renderFields([
          ['user', m.user.name],
          ['role', m.user.role],
          ['context', ctx.name],
          ['controller', ctx.url],
          ['gpus', `${m.quota.usage.gpus} used of ${m.quota.limits.gpus ?? 'unlimited'}`],
          ['environments', `${m.quota.usage.environments} of ${m.quota.limits.environments ?? 'unlimited'}`],
          ['workspaces', m.workspaces.map((w) => `${w.name} (${w.role})`).join(', ')],
        ]),
      );
    });

  registerContext(program, cli);
}

/** context ls|use. */
function registerContext(program: Command, cli: Cli): void {
  const context = command(program, 'context', 'list the saved contexts or switch between them').addHelpText('after', '\nExamples:\n  remotegpu context ls\n  remotegpu context use staging\n  remotegpu --context staging env ls');
  command(context, 'ls', 'list the saved contexts (* marks the current one)')
    .addHelpText('after', '\nExamples:\n  remotegpu context ls\n  remotegpu context ls --json')
    .action(async () => {
    const config = cli.config();
    const rows = Object.entries(config.contexts).map(([name, c]) => ({ name, url: c.url, current: name === config.current }));
    await cli.list(rows, [{ header: '', cell: (r) => (r.current ? '*' : ' ') }, { header: 'name', cell: (r) => r.name }, { header: 'url', cell: (r) => r.url }]);
  });
  command(context, 'use <name>', 'make a saved context the current one')
    .addHelpText('after', '\nExamples:\n  remotegpu context use staging')
    .action(async (name: string) => {
    const config = cli.config();
    if (!config.contexts[name]) throw new CliError(`no context named ${JSON.stringify(name)} (see \`remotegpu context ls\`)`, EXIT.notFound);
    config.current = name;
    cli.saveConfig(config);
    await cli.note(`Current context: ${name} (${config.contexts[name].url}).`);
  });
}

async function login(cli: Cli, options: { url: string; name?: string }): Promise<void> {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new CliError(`--url ${JSON.stringify(options.url)} is not a URL: use e.g. https://gpu.example.com`, EXIT.usage);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`--url must be http:// or https://, not ${url.protocol}`, EXIT.usage);
  const base = url.origin + url.pathname.replace(/\/+$/, '');
  const name = options.name ?? cli.contextOption ?? url.host;
  const token = (await readSecret(cli.io, `API token for ${base}: `)).trim();
  if (!token) throw new CliError('no token given: paste the API token an admin created for you (rgpu_…)', EXIT.usage);
  if (!isTokenText(token)) throw new CliError('that is not an API token (it holds a space, a line break or a character outside ASCII): paste the one token an admin created for you (rgpu_…)', EXIT.usage);
  // Checked before it is saved: a wrong token or URL leaves the config as it was.
  const me = (await call(apiClient({ name, url: base, token }).GET('/api/v1/me'))).data;
  const config = cli.config();
  config.contexts[name] = { url: base, token };
  config.current = name;
  cli.saveConfig(config);
  await cli.note(`Signed in to ${base} as ${me.user.name} (${me.user.role}); context ${JSON.stringify(name)} saved in ${cli.configPath} and made current.`);
}
