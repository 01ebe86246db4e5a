import type { Readable, Writable } from 'node:stream';
import { activeContext, configPath, readConfig, writeConfig, type ActiveContext, type CliConfig } from './config.js';
import { apiClient, call, type ApiClient, type Schemas } from './client.js';
import { EXIT } from './errors.js';
import { allPages, PAGE_SIZE } from './pages.js';
import { pickOne } from './pick.js';
import type { paths } from '../gen/openapi/api.js';
import { renderJson, renderTable, write, type Column } from './output.js';

/** The process's streams and environment (tests run the real process; these keep commands honest). */
export interface Io {
  readonly stdin: Readable & { isTTY?: boolean };
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable;
  readonly env: NodeJS.ProcessEnv;
}

/** Options every command accepts (commander's global options). */
export interface GlobalOptions {
  readonly context?: string;
  readonly json?: boolean;
}

export type Environment = Schemas['Environment'];
type ListQuery = Omit<NonNullable<paths['/api/v1/environments']['get']['parameters']['query']>, 'page' | 'page_size'>;

/** The context worked out from the config file, and its clients by kind. */
interface Resolved {
  readonly context: ActiveContext;
  readonly clients: Map<'plain' | 'streaming', ApiClient>;
}

/**
 * What a command works with: the streams, the config and the active context, a typed client,
 * and output helpers that honour `--json`. One per run; built before the command's action.
 */
export class Cli {
  private options: GlobalOptions = {};
  /**
   * The context as worked out from the config file, and the clients made for it: read once per
   * run, not per request (`--wait` asks every second). Dropped when the options change or the
   * config is saved (login, logout, context use), so those are never shadowed.
   */
  private resolved?: Resolved;
  private requestTimeoutMs?: number;
  /** The exit code when the command ends without an error (`remotegpu ssh` passes on ssh's). */
  exitCode = 0;

  constructor(readonly io: Io) {}

  /** Called by the program with the parsed global options before a command runs. */
  setOptions(options: GlobalOptions): void {
    this.options = options;
    this.resolved = undefined;
  }

  /** Gives up on each request after `ms` from now on (completion: a TAB must never hang the shell for long). */
  setRequestTimeout(ms: number): void {
    this.requestTimeoutMs = ms;
    this.resolved?.clients.clear();
  }

  get json(): boolean {
    return this.options.json === true;
  }

  get configPath(): string {
    return configPath(this.io.env);
  }

  /** The config as the file holds it now (read each time: login, logout and context use change and write it). */
  config(): CliConfig {
    return readConfig(this.configPath);
  }

  /** The context named by --context, REMOTEGPU_CONTEXT, REMOTEGPU_URL/TOKEN or the current one. */
  context(): ActiveContext {
    return this.current().context;
  }

  /** Writes the config (0600, atomically); the context is worked out again from it. */
  saveConfig(config: CliConfig): void {
    writeConfig(this.configPath, config);
    this.resolved = undefined;
  }

  private current(): Resolved {
    this.resolved ??= { context: activeContext(this.config(), this.options.context, this.io.env), clients: new Map() };
    return this.resolved;
  }

  /** The name --context asked for (login writes to it), if any. */
  get contextOption(): string | undefined {
    return this.options.context;
  }

  /** The client for the context (one per kind, reused for every request of the run). */
  client(options: { streaming?: boolean } = {}): ApiClient {
    const { context, clients } = this.current();
    const kind = options.streaming ? 'streaming' : 'plain';
    let client = clients.get(kind);
    if (!client) {
      client = apiClient(context, { streaming: options.streaming, timeoutMs: this.requestTimeoutMs });
      clients.set(kind, client);
    }
    return client;
  }

  out(text: string): Promise<void> {
    return write(this.io.stdout, text.endsWith('\n') ? text : `${text}\n`);
  }

  /** A status line for people on stderr (progress, hints): never mixed into --json output. */
  note(text: string): Promise<void> {
    return write(this.io.stderr, text.endsWith('\n') ? text : `${text}\n`);
  }

  /** Prints `data` as JSON with --json, else as a table of `columns`. */
  list<T>(rows: readonly T[], columns: readonly Column<T>[]): Promise<void> {
    return this.out(this.json ? renderJson(rows) : renderTable(rows, columns));
  }

  /** Prints `data` as JSON with --json, else what `human` renders. */
  show<T>(data: T, human: (data: T) => string): Promise<void> {
    return this.out(this.json ? renderJson(data) : human(data));
  }

  /**
   * The environment an argument names: its id (`env-…`), or its name when exactly one of the
   * caller's environments has it. Unknown is exit 4; a name several environments share is exit 2,
   * listing their ids.
   */
  async environment(ref: string): Promise<Environment> {
    const client = this.client();
    if (/^env-[A-Za-z0-9_-]+$/.test(ref)) {
      return (await call(client.GET('/api/v1/environments/{env_id}', { params: { path: { env_id: ref } } }))).data;
    }
    return pickOne(await this.allEnvironments(), ref, {
      what: 'environment',
      plural: 'environments',
      id: (e) => e.env_id,
      names: (e) => [e.name],
      hint: '(see `remotegpu env ls`)',
    });
  }

  /** Every environment the caller can see, all pages. */
  async allEnvironments(query: ListQuery = {}): Promise<Environment[]> {
    const client = this.client();
    return allPages((page) => client.GET('/api/v1/environments', { params: { query: { ...query, page, page_size: PAGE_SIZE } } }));
  }
}

/** The process's own streams and environment. */
export function processIo(): Io {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
}

export { EXIT };
