import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError, EXIT } from './errors.js';
import { readTextFile, writeFileAtomically } from './files.js';

/** One controller the CLI talks to, and the token it signs in with. */
export interface ContextEntry {
  readonly url: string;
  readonly token: string;
}

/** ~/.config/remotegpu/config.json: named contexts and the one in use. */
export interface CliConfig {
  current: string | null;
  contexts: Record<string, ContextEntry>;
}

/**
 * Where the config lives: $REMOTEGPU_CONFIG, else $XDG_CONFIG_HOME/remotegpu/config.json, else
 * ~/.config/remotegpu/config.json.
 */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.REMOTEGPU_CONFIG) return env.REMOTEGPU_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'remotegpu', 'config.json');
}

/** The directory the CLI keeps its files in (the config, the known_hosts it writes). */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  return dirname(configPath(env));
}

/** Reads the config; an empty one when there is no file yet. A file that is not ours is an error. */
export function readConfig(path: string): CliConfig {
  const text = readTextFile(path);
  if (text === undefined) return { current: null, contexts: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliError(`${path} is not valid JSON; fix it or remove it and run \`remotegpu login\` again`);
  }
  if (!isConfig(parsed)) throw new CliError(`${path} is not a remotegpu config; fix it or remove it and run \`remotegpu login\` again`);
  return parsed;
}

function isConfig(value: unknown): value is CliConfig {
  if (typeof value !== 'object' || value === null) return false;
  const { current, contexts } = value as Record<string, unknown>;
  if (current !== null && typeof current !== 'string') return false;
  if (typeof contexts !== 'object' || contexts === null) return false;
  return Object.values(contexts).every((c) => typeof c === 'object' && c !== null && typeof (c as ContextEntry).url === 'string' && typeof (c as ContextEntry).token === 'string');
}

/**
 * Writes the config readable by its owner only (0600, in a 0700 directory): it holds tokens. The
 * file is replaced whole (written aside, then renamed), so a crash never leaves half of it. A
 * failure is a CliError.
 */
export function writeConfig(path: string, config: CliConfig): void {
  writeFileAtomically(path, `${JSON.stringify(config, null, 2)}\n`, 0o600);
}

/** The name of the context REMOTEGPU_URL and REMOTEGPU_TOKEN make. */
export const ENV_CONTEXT = '(environment)';

/** The context a command uses, and where it came from (for messages). */
export interface ActiveContext extends ContextEntry {
  readonly name: string;
}

/**
 * The context to use: REMOTEGPU_URL with REMOTEGPU_TOKEN when both are set (scripts, CI); else
 * the one named by --context or REMOTEGPU_CONTEXT; else the current one. Not signed in is exit 3.
 */
export function activeContext(config: CliConfig, wanted: string | undefined, env: NodeJS.ProcessEnv = process.env): ActiveContext {
  if (env.REMOTEGPU_URL && env.REMOTEGPU_TOKEN && !wanted) return { name: ENV_CONTEXT, url: env.REMOTEGPU_URL, token: env.REMOTEGPU_TOKEN };
  const name = wanted ?? env.REMOTEGPU_CONTEXT ?? config.current;
  if (!name) throw new CliError('not signed in: run `remotegpu login --url URL` first', EXIT.auth);
  const entry = config.contexts[name];
  if (!entry) {
    const known = Object.keys(config.contexts);
    throw new CliError(`no context named ${JSON.stringify(name)}${known.length ? ` (known: ${known.join(', ')})` : ''}: run \`remotegpu login --url URL --context ${name}\``, EXIT.auth);
  }
  return { name, ...entry };
}
