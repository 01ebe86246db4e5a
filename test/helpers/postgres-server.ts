import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// PostgreSQL servers of a test's own, for tests that stop or restart them (database outages): a
// data directory under /tmp and a port of their own, never the shared test server. Started by
// scripts/start-postgres.sh, as CI starts the shared one; the server binaries refuse root, so
// pg_ctl runs as the `postgres` user.

const run = promisify(execFile);
const START_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/start-postgres.sh');

/** Where pg_ctl lives, or undefined when this machine has no PostgreSQL server binaries. */
export function pgBinDir(): string | undefined {
  for (const dir of [process.env.REMOTEGPU_PG_BIN, '/usr/local/bin', '/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/bin']) {
    if (dir && existsSync(path.join(dir, 'pg_ctl')) && existsSync(path.join(dir, 'initdb'))) return dir;
  }
  return undefined;
}

/** Starts (initdb on first use) the server in `dir` on `port` with scripts/start-postgres.sh; idempotent. Returns its URL. */
export async function startPostgresIn(dir: string, port: number): Promise<string> {
  const env = { ...process.env, PATH: `${pgBinDir() ?? '/usr/local/bin'}:${process.env.PATH ?? ''}` };
  const { stdout } = await run('bash', [START_SCRIPT, dir, String(port)], { env });
  return stdout.trim();
}

/**
 * `pg_ctl -D dir -w -t 60 <args>`, as the `postgres` user when run as root. The server's output
 * goes to dir/server.log (as the start script's does): a restarted server must not hold this
 * command's stdout open.
 */
export async function pgCtl(dir: string, ...args: string[]): Promise<void> {
  const bin = path.join(pgBinDir() ?? '/usr/local/bin', 'pg_ctl');
  const full = ['-D', dir, '-l', path.join(dir, 'server.log'), '-w', '-t', '60', ...args];
  await (process.getuid?.() === 0 ? run('runuser', ['-u', 'postgres', '--', bin, ...full]) : run(bin, full));
}

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  readonly url: string;
  readonly port: number;
  /** `pg_ctl restart -m fast`: every session is terminated (57P01), the server is back when it resolves. */
  restart(): Promise<void>;
  /** `pg_ctl stop -m fast`. */
  stop(): Promise<void>;
  /** Starts it again; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops the server and removes its data directory. Idempotent. */
  destroy(): Promise<void>;
}

/** The first port of [from, to] that nothing listens on at 127.0.0.1 (a test's own port range). */
export async function freePortIn(from: number, to: number, skip: readonly number[] = []): Promise<number> {
  const start = from + (process.pid % (to - from + 1));
  for (let i = 0; i <= to - from; i++) {
    const port = from + ((start - from + i) % (to - from + 1));
    if (skip.includes(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port in ${from}-${to}`);
}

/** Creates and starts a private PostgreSQL server on `port`. */
export async function startPrivatePostgres(port: number): Promise<PrivatePostgres> {
  const dir = `/tmp/rgpu-private-pg-${process.pid}-${port}`;
  rmSync(dir, { recursive: true, force: true });
  const url = await startPostgresIn(dir, port);
  let destroyed = false;
  return {
    url,
    port,
    restart: () => pgCtl(dir, '-m', 'fast', 'restart'),
    stop: () => pgCtl(dir, '-m', 'fast', 'stop'),
    start: async () => void (await startPostgresIn(dir, port)),
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      await pgCtl(dir, '-m', 'immediate', 'stop').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
